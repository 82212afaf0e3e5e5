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

// The flag vocabulary's former names still work: an old name reads as its new one.
func TestFlagAliases(t *testing.T) {
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"eval", "--gt=x"}, "dataset"}, {[]string{"quant", "run", "--outdir=x"}, "output"},
		{[]string{"train", "--out=x"}, "output"}, {[]string{"dataset", "synth", "--out=x"}, "output"},
		{[]string{"quant", "qat", "--outdir=x", "--out=y"}, "output"},
	} {
		root := newRootCmd(slog.New(slog.DiscardHandler))
		cmd, rest, err := root.Find(c.args)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if f := cmd.Flags().Lookup(c.flag); f == nil || f.Value.String() != "x" {
			t.Errorf("%v: --%s = %v", c.args, c.flag, f)
		}
	}
	root := newRootCmd(slog.New(slog.DiscardHandler))
	cmd, rest, _ := root.Find([]string{"quant", "qat", "--out=ck"})
	if err := cmd.ParseFlags(rest); err != nil || cmd.Flags().Lookup("checkpoints").Value.String() != "ck" {
		t.Errorf("qat --out: %v %v", err, cmd.Flags().Lookup("checkpoints").Value)
	}
}
