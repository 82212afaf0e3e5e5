// Command fakeagent stands in for pynq-agent in the deploy tests until the real daemon
// serves /healthz: it answers /healthz ("ok <version>") and /api/status like the agent
// will, and fails its health check when its config says fail_health = true.
//
// Config (a subset of the agent's TOML, read line by line):
//
//	listen = "127.0.0.1:8080"
//	fail_health = true
//	label = "b"
//
// "fakeagent activate ..." is the real agent's activate subcommand.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fpgadetector/pynq-agent/deploy/activate"
)

// version is set with -ldflags "-X main.version=...".
var version = "fake-dev"

// maxLifetime ends a stand-in a test forgot to stop.
const maxLifetime = 5 * time.Minute

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fakeagent:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "activate" {
		return activate.Command(context.Background(), args[1:], os.Stdout, os.Stderr)
	}
	fs := flag.NewFlagSet("fakeagent", flag.ContinueOnError)
	config := fs.String("config", "", "agent TOML config")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println("pynq-agent", version) // as the real agent prints it
		return nil
	}
	cfg := fakeConfig{listen: "127.0.0.1:8080"}
	if *config != "" {
		var err error
		if cfg, err = readConfig(*config, cfg); err != nil {
			return err
		}
	}
	listen, fail := cfg.listen, cfg.fail
	start := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if fail {
			http.Error(w, "unhealthy: fail_health is set", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok %s\n", version)
	})
	mux.HandleFunc("/api/status", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"version": version, "label": cfg.label, "fps": 0.75, "pid": os.Getpid(), "uptime": time.Since(start).Round(time.Second).String(),
		})
	})
	srv := &http.Server{Addr: listen, Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, maxLifetime)
	defer cancel()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Fprintf(os.Stderr, "fakeagent %s listening on %s (fail_health=%v)\n", version, listen, fail)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// fakeConfig is what the stand-in reads from its TOML: where to listen, whether to fail
// its health check, and a label /api/status reports (so tests see which release serves).
type fakeConfig struct {
	listen, label string
	fail          bool
}

func readConfig(path string, cfg fakeConfig) (fakeConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return cfg, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"`)
		switch strings.TrimSpace(k) {
		case "listen":
			cfg.listen = v
		case "fail_health":
			cfg.fail = v == "true"
		case "label":
			cfg.label = v
		}
	}
	return cfg, sc.Err()
}
