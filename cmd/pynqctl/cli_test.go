package main

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
)

// runPynqctl runs the pynqctl command tree with args, as main does but with logging
// discarded, and returns what it wrote to stdout and stderr (interleaved) and its error.
func runPynqctl(tb testing.TB, args ...string) (string, error) {
	tb.Helper()
	var out bytes.Buffer
	root := newRootCmd(slog.New(slog.NewTextHandler(io.Discard, nil)))
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.Execute()
	return out.String(), err
}
