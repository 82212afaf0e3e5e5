package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fpgadetector/pynq-agent/bitstream"
	"github.com/fpgadetector/pynq-agent/web"
)

// Run is the daemon: start-up, then the HTTP API and feed on cfg.Server.Listen and the
// pipeline, until ctx ends; then it drains (frames in flight finish), shuts the server
// down within server.shutdown_timeout and releases the hardware. Under systemd it sends
// READY=1 after start-up, WATCHDOG=1 at half of WATCHDOG_USEC, and STOPPING=1.
func Run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	notify := NewNotifier()
	token, err := cfg.Token()
	if err != nil {
		return err
	}
	if token == "" {
		log.Info("no control token configured: the feed is read-only, control is disabled (set server.token)")
	}
	if cfg.OpenOrigins() {
		log.Warn("server.allowed_origins contains \"*\": any web page a viewer opens may read the feed and, with the token, control the agent; list the origins instead")
	}
	a, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w (server.listen / -listen)", cfg.Server.Listen, err)
	}
	// A cap on connections, each a goroutine and buffers on a 512 MB board; at the cap
	// the longest-idle one makes room, so idle connections cannot lock clients out.
	limit := web.LimitConns(ln, cfg.Server.MaxConnections)
	ln = limit
	hub := web.NewHub(web.HubOptions{Quality: cfg.Server.JPEGQuality, Logger: log})
	defer hub.Close()
	a.SetViewers(hub.Viewers)
	srv := &http.Server{
		Handler: web.NewServer(a, hub, web.ServerOptions{
			Token: token, AllowedOrigins: cfg.Server.AllowedOrigins, Version: Version, Logger: log,
			MaxViewers: cfg.Server.MaxViewers,
		}),
		// Bounded: a client that sends slowly or keeps an idle keep-alive connection
		// gives it back (answers have their own write deadline, the feed its own).
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ConnState:         limit.ConnState,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String(), "backend", cfg.Backend, "source", RedactURL(cfg.SourceInput()))

	pctx, stopPipeline := context.WithCancel(ctx)
	defer stopPipeline()
	var wg sync.WaitGroup
	wg.Go(func() { a.Serve(pctx, hub) })
	if err := notify.Notify("READY=1", "STATUS=processing frames"); err != nil {
		log.Warn("systemd notify failed", "err", err)
	}
	wg.Go(func() { watchdog(pctx, notify, log, a.Health) })

	select {
	case <-ctx.Done():
		log.Info("stopping: draining frames in flight")
	case err = <-serveErr:
		log.Error("http server failed", "err", err)
	}
	notify.Notify("STOPPING=1")
	stopPipeline()
	wg.Wait()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Server.ShutdownWait.Duration)
	defer cancel()
	hub.Close() // disconnects feed viewers, whose hijacked connections Shutdown does not track
	if serr := srv.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", serr)
		srv.Close()
	}
	log.Info("stopped", "frames_out", a.pipe.Stats().FramesOut)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// watchdog pings systemd's watchdog while the pipeline runs and is healthy, so systemd
// restarts a daemon whose engine wedged. One unhealthy state keeps the pings going:
// another program holding the PL, which a restart would program over.
func watchdog(ctx context.Context, n *Notifier, log *slog.Logger, health func() error) {
	if n == nil {
		return
	}
	every, ok, err := WatchdogInterval()
	if err != nil {
		log.Warn("systemd watchdog disabled", "err", err)
	}
	if !ok {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := health(); err != nil && !errors.Is(err, bitstream.ErrPLChanged) {
				log.Error("unhealthy: not pinging the systemd watchdog", "reason", err)
				continue
			}
			if err := n.Notify("WATCHDOG=1"); err != nil {
				log.Warn("systemd watchdog ping failed", "err", err)
			}
		}
	}
}

// FixturesDir locates the shared fixtures: $PYNQ_FIXTURES, else ../shared/fixtures
// beside the repository holding the working directory (found by walking up to go.mod).
// "" when neither exists.
func FixturesDir() string {
	if d := os.Getenv("PYNQ_FIXTURES"); d != "" {
		if isDir(d) {
			return d
		}
		return ""
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if d := filepath.Join(dir, "..", "shared", "fixtures"); isDir(d) {
				return filepath.Clean(d)
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// SimDefaults is the FPGA simulation with the QNN-MO W1A3 overlay and Tinier-YOLO of
// the shared fixtures, their sample photos as the source, listening on 127.0.0.1:8080;
// without fixtures the model and bitstream stay empty. `pynq-agent -sim` without
// -config starts from it and replaces model, bitstream and source with the built-in
// demo (agent/demomodel on synth: scenes), so that it needs no file from outside the
// repository.
func SimDefaults() *Config {
	c := Defaults()
	c.Backend = BackendSim
	fx := FixturesDir()
	if fx == "" {
		return c
	}
	q := filepath.Join(fx, "qnn-mo-pynq")
	if !isDir(q) {
		return c
	}
	c.Bitstream.Path = filepath.Join(q, "bitstream", "W1A3-pynqZ1-Z2.bit")
	c.Model.Dir = filepath.Join(q, "params")
	c.Model.Names = filepath.Join(q, "voc.names")
	c.Source.Input = filepath.Join(q, "images")
	return c
}
