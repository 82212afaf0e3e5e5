//go:build linux

package telemetry

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHoldForProcess is a tool, not a test: with TELEMETRY_HOLD_COMM=<comm> it waits
// for a process of that name, loads telemetry for its tgid, holds it until the process
// exits and logs what it saw. bench_pipeline.sh uses it to run the agent's pipeline
// benchmark with and without telemetry loaded.
func TestHoldForProcess(t *testing.T) {
	comm := os.Getenv("TELEMETRY_HOLD_COMM")
	if comm == "" {
		t.Skip("set TELEMETRY_HOLD_COMM to a process name to measure it (see bench_pipeline.sh)")
	}
	pid := 0
	for deadline := time.Now().Add(60 * time.Second); pid == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		pid = findProcess(comm)
	}
	if pid == 0 {
		t.Fatalf("no process named %q within 60 s", comm)
	}
	tel := openOrSkip(t, Options{TGID: pid})
	for {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := tel.Snapshot()
	t.Logf("pid %d: %d run-queue waits, p50 %v p90 %v p99 %v mean %v", pid, s.RunQueue.Count, s.P50, s.P90, s.P99, s.RunQueue.Mean())
}

func findProcess(comm string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(b)) == comm {
			return pid
		}
	}
	return 0
}
