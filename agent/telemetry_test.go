package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/agent/telemetry"
)

// TestKernelTelemetry runs the sim agent with the eBPF probes (root and bpf needed,
// else it skips): /api/status carries Extra.telemetry with the pipeline threads'
// off-CPU figures and /metrics the pynq_agent_kernel_ families.
func TestKernelTelemetry(t *testing.T) {
	skipSimPipelineInShort(t)
	if _, err := telemetry.Open(telemetry.Options{}); err != nil {
		t.Skipf("kernel telemetry unavailable here (needs Linux, root and bpf): %v", err)
	}
	cfg := simConfig(t)
	a, err := New(context.Background(), cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.tel == nil {
		t.Fatal("telemetry available but not opened by the agent")
	}
	serveFrames(t, a, 3)
	tel, ok := a.Status().Extra["telemetry"].(map[string]any)
	if !ok || len(tel) == 0 {
		t.Fatalf("status extra telemetry: %v", a.Status().Extra["telemetry"])
	}
	t.Logf("telemetry: %v", tel)
	if _, ok := tel["offcpu_engine_last_frame_ms"]; !ok {
		t.Errorf("no engine thread off-CPU figure in %v", tel)
	}
	var m bytes.Buffer
	if err := a.WriteMetrics(&m); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.String(), "\npynq_agent_kernel_") {
		t.Errorf("metrics without pynq_agent_kernel_ lines:\n%s", m.String())
	}
	checkPromText(t, m.String())
	if _, ok := a.Pipeline().Stats().StagesMS[StageOffCPUEngine]; !ok {
		t.Errorf("no %s stage figure: %v", StageOffCPUEngine, a.Pipeline().Stats().StagesMS)
	}
}

// TestTelemetryUnavailableRunsOn: a kernel without bpf is logged once and the agent
// processes frames without telemetry.
func TestTelemetryUnavailableRunsOn(t *testing.T) {
	skipSimPipelineInShort(t)
	defer func(f func(telemetry.Options) (*telemetry.Telemetry, error)) { openTelemetry = f }(openTelemetry)
	openTelemetry = func(telemetry.Options) (*telemetry.Telemetry, error) {
		return nil, fmt.Errorf("kernel telemetry: %w: bpf() not permitted", telemetry.ErrNotSupported)
	}
	var logs syncBuffer
	a, err := New(context.Background(), simConfig(t), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	serveFrames(t, a, 1)
	if _, ok := a.Status().Extra["telemetry"]; ok {
		t.Error("telemetry in status without telemetry")
	}
	if n := strings.Count(logs.String(), "kernel telemetry off"); n != 1 {
		t.Errorf("%d 'kernel telemetry off' lines, want 1:\n%s", n, logs.String())
	}
	var m bytes.Buffer
	if err := a.WriteMetrics(&m); err != nil || strings.Contains(m.String(), "pynq_agent_kernel_") {
		t.Errorf("metrics %v with kernel lines", err)
	}
}

// serveFrames serves the configured source until n frames were published and returns
// them.
func serveFrames(tb testing.TB, a *Agent, n int) *collector {
	tb.Helper()
	pub := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Serve(ctx, pub) }()
	waitFor(tb, fmt.Sprintf("%d frames", n), func() bool { return pub.count() >= n })
	cancel()
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
	return pub
}

// TestTelemetryPanicAndSwitch: a panic while loading the probes is logged and the agent
// runs without telemetry; telemetry.enabled = false never loads them.
func TestTelemetryPanicAndSwitch(t *testing.T) {
	skipSimPipelineInShort(t)
	defer func(f func(telemetry.Options) (*telemetry.Telemetry, error)) { openTelemetry = f }(openTelemetry)
	calls := 0
	openTelemetry = func(telemetry.Options) (*telemetry.Telemetry, error) {
		calls++
		panic("ebpf: 32-bit map layout")
	}
	var logs syncBuffer
	a, err := New(context.Background(), faultConfig(t), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	serveFrames(t, a, 1)
	a.Close()
	if a.tel != nil || !strings.Contains(logs.String(), "kernel telemetry failed; running without it") {
		t.Errorf("after a panic: telemetry %v, logs:\n%s", a.tel, logs.String())
	}
	c := faultConfig(t)
	off := false
	c.Telemetry.Enabled = &off
	a, err = New(context.Background(), c, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if calls != 1 {
		t.Errorf("telemetry loaded %d times, want once (not with enabled = false)", calls)
	}
}
