package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// An in-process agent's INFO lines stay out of the command's output unless --verbose.
func TestAgentLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a := agentLog(log).With("part", "agent")
	a.Info("model loaded")
	a.Warn("engine slow")
	log.Info("command step")
	out := buf.String()
	if strings.Contains(out, "model loaded") || !strings.Contains(out, "engine slow") || !strings.Contains(out, "command step") {
		t.Fatalf("default: %q", out)
	}
	defer agentLogLevel.Set(agentLogLevel.Level())
	agentLogLevel.Set(slog.LevelInfo) // --verbose
	a.Info("model loaded")
	if !strings.Contains(buf.String(), "model loaded") {
		t.Fatalf("verbose: %q", buf.String())
	}
}
