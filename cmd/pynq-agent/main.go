// Command pynq-agent is the board daemon: it programs the bitstream, drives the QNN
// engine and serves the live chair-detection feed. With -sim it runs on any Linux
// machine against the FPGA simulation.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fpgadetector/pynq-agent/agent"
	"github.com/fpgadetector/pynq-agent/agent/demomodel"
	"github.com/fpgadetector/pynq-agent/deploy/activate"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pynq-agent:", err)
		os.Exit(1)
	}
}

// flags are the command line; set ones override the config.
type flags struct {
	config, source, listen, model string
	sim, version                  bool
}

func parseFlags(args []string, stderr io.Writer) (flags, *flag.FlagSet, error) {
	var f flags
	fs := flag.NewFlagSet("pynq-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "TOML config file (see configs/pynq-agent.toml)")
	fs.BoolVar(&f.sim, "sim", false, "run against the FPGA simulation instead of the board (without -config: the built-in demo chair model and simulation design, synthetic scenes as the source)")
	fs.StringVar(&f.source, "source", "", "frame source: image dir, glob, file, http(s):// MJPEG URL, /dev/videoN or synth:SEED (overrides source.input)")
	fs.StringVar(&f.listen, "listen", "", "HTTP listen address host:port (overrides server.listen)")
	fs.StringVar(&f.model, "model", "", "QNN-MO parameter directory (overrides model.dir)")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: pynq-agent [-config FILE] [-sim] [-source SRC] [-listen ADDR] [-model DIR]\n"+
			"       pynq-agent activate -id ID -release NAME ... (run by pynqctl deploy on the board)\n\n")
		fs.PrintDefaults()
	}
	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments %q (flags only)", fs.Args())
	}
	return f, fs, err
}

// loadConfig reads the config (or the -sim defaults) and applies the flags. For -sim
// without -config it extracts the built-in demo into a temporary directory; cleanup
// removes it (nil when nothing was extracted).
func loadConfig(f flags, set map[string]bool) (cfg *agent.Config, cleanup func(), err error) {
	switch {
	case f.config != "":
		if cfg, err = agent.LoadConfig(f.config); err != nil {
			return nil, nil, err
		}
	case f.sim:
		if cfg, cleanup, err = demoConfig(); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, errors.New("no config: pass -config FILE (see configs/pynq-agent.toml), or -sim to run the simulation")
	}
	defer func() {
		if err != nil && cleanup != nil {
			cleanup()
			cleanup = nil
		}
	}()
	if f.sim {
		cfg.Backend = agent.BackendSim
	}
	if set["source"] {
		cfg.Source.Input = flagPath(f.source)
	}
	if set["listen"] {
		cfg.Server.Listen = f.listen
	}
	if set["model"] {
		cfg.Model.Kind, cfg.Model.Dir = agent.ModelQNN, flagPath(f.model)
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("after flags: %w", err)
	}
	return cfg, cleanup, nil
}

// flagPath makes a relative path from a flag absolute against the working directory:
// flags name paths as the shell does, while the config's keys resolve against the
// config file's directory (agent.Config.Path). URLs, devices and synthetic sources stay.
func flagPath(p string) string {
	if p == "" || filepath.IsAbs(p) || strings.Contains(p, "://") || strings.HasPrefix(p, agent.SynthPrefix) {
		return p
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// demoConfig is -sim without -config: the FPGA simulation running the built-in demo
// chair model (agent/demomodel) on synthetic scenes, with nothing read from outside the
// binary. -model and -source replace the model and the source as usual.
func demoConfig() (*agent.Config, func(), error) {
	dir, err := os.MkdirTemp("", "pynq-agent-demo-")
	if err != nil {
		return nil, nil, fmt.Errorf("demo model: %w", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	p, err := demomodel.Extract(dir)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	cfg := agent.SimDefaults()
	cfg.Bitstream.Path, cfg.Bitstream.HWH = p.Bitstream, ""
	cfg.Model.Kind, cfg.Model.Dir, cfg.Model.Names = agent.ModelQNN, p.ModelDir, p.Names
	cfg.Source.Input = agent.SynthPrefix + "1"
	return cfg, cleanup, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "activate" {
		return activate.Command(ctx, args[1:], stdout, stderr)
	}
	f, fs, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if f.version {
		fmt.Fprintln(stdout, "pynq-agent", agent.Version)
		return nil
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	cfg, cleanup, err := loadConfig(f, set)
	if err != nil {
		return err
	}
	if cleanup != nil {
		defer cleanup()
	}
	log := cfg.NewLogger(os.Stderr)
	return agent.Run(ctx, cfg, log)
}
