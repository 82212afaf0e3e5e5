package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/agent"
)

func TestVersionAndHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-version"}, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "pynq-agent ") {
		t.Errorf("-version: %q %v", out.String(), err)
	}
	if err := run(context.Background(), []string{"-h"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	if err := run(context.Background(), []string{"extra"}, io.Discard, io.Discard); err == nil {
		t.Error("positional argument accepted")
	}
	if err := run(context.Background(), nil, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "-config") {
		t.Errorf("no config: %v", err)
	}
	// The board-side switch deploy runs (deploy/activate tests it in full).
	var usage bytes.Buffer
	if err := run(context.Background(), []string{"activate", "-base", t.TempDir()}, io.Discard, &usage); err == nil ||
		!strings.Contains(err.Error(), "-release") || !strings.Contains(usage.String(), "usage: pynq-agent activate") {
		t.Errorf("activate without a release: %v\n%s", err, usage.String())
	}
}

// TestFlagsOverrideConfig: -sim, -source, -listen and -model replace the config's keys.
func TestFlagsOverrideConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.toml")
	os.WriteFile(path, []byte(`backend = "board"
[model]
dir = "params"
[source]
input = "/dev/video0"
[server]
listen = "0.0.0.0:80"
`), 0o644)
	args := []string{"-config", path, "-sim", "-source", "http://cam/stream", "-listen", "127.0.0.1:9", "-model", "/m"}
	f, fs, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	cfg, _, err := loadConfig(f, set)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Backend != agent.BackendSim || cfg.Source.Input != "http://cam/stream" || cfg.Server.Listen != "127.0.0.1:9" || cfg.Model.Dir != "/m" {
		t.Errorf("flags not applied: %+v", cfg)
	}
	// Without the flags the config stands.
	f, fs, _ = parseFlags([]string{"-config", path}, io.Discard)
	cfg, _, err = loadConfig(f, map[string]bool{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Backend != agent.BackendBoard || cfg.Server.Listen != "0.0.0.0:80" || cfg.Path(cfg.Model.Dir) != filepath.Join(dir, "params") {
		t.Errorf("config changed: %+v", cfg)
	}
	// Relative paths in flags are the shell's, whatever the config file's directory.
	f, fs, _ = parseFlags([]string{"-config", path, "-source", "frames/", "-model", "m"}, io.Discard)
	set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if cfg, _, err = loadConfig(f, set); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if got := cfg.SourceInput(); got != filepath.Join(wd, "frames") {
		t.Errorf("-source frames/ with -config in %s: %s, want it under %s", dir, got, wd)
	}
	if got := cfg.Path(cfg.Model.Dir); got != filepath.Join(wd, "m") {
		t.Errorf("-model m with -config in %s: %s, want it under %s", dir, got, wd)
	}
	// A bad flag value is reported like a bad key.
	f, _, _ = parseFlags([]string{"-config", path, "-listen", "nonsense"}, io.Discard)
	if _, _, err := loadConfig(f, map[string]bool{"listen": true}); err == nil || !strings.Contains(err.Error(), "server.listen") {
		t.Errorf("bad -listen: %v", err)
	}
}

// TestSimUsesTheBuiltInDemo: -sim without -config needs no file from outside the
// repository: the embedded demo model and simulation design, synthetic scenes.
func TestSimUsesTheBuiltInDemo(t *testing.T) {
	t.Setenv("PYNQ_FIXTURES", filepath.Join(t.TempDir(), "none"))
	f, fs, err := parseFlags([]string{"-sim"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	cfg, cleanup, err := loadConfig(f, set)
	if err != nil {
		t.Fatal(err)
	}
	if cleanup == nil {
		t.Fatal("no cleanup for the extracted demo")
	}
	if cfg.Backend != agent.BackendSim || cfg.Source.Input != "synth:1" || cfg.Model.Kind != agent.ModelQNN {
		t.Errorf("config %+v", cfg)
	}
	for _, p := range []string{cfg.Model.Dir, cfg.Model.Names, cfg.Bitstream.Path, cfg.HWHPath()} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("demo file: %v", err)
		}
	}
	cleanup()
	if _, err := os.Stat(cfg.Model.Dir); !os.IsNotExist(err) {
		t.Errorf("demo files left after cleanup: %v", err)
	}
	// -source and -model still replace the demo's.
	f, fs, _ = parseFlags([]string{"-sim", "-source", "synth:9", "-model", "/m"}, io.Discard)
	set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	cfg, cleanup, err = loadConfig(f, set)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if cfg.Source.Input != "synth:9" || cfg.Model.Dir != "/m" {
		t.Errorf("flags not applied over the demo: %+v", cfg)
	}
}
