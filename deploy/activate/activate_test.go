package activate

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// board makes a base directory with complete releases a and b, current -> a, and a
// systemctl stand-in that logs its arguments.
func board(t *testing.T, healthy func(release string) bool) (Plan, *bytes.Buffer) {
	t.Helper()
	base := t.TempDir()
	for _, r := range []string{"a", "b"} {
		dir := filepath.Join(base, "releases", r)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, completeName), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		unit := fmt.Sprintf("[Service]\nExecStart=%s\n", r)
		if err := os.WriteFile(filepath.Join(dir, UnitName), []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("releases/a", filepath.Join(base, "current")); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		cur, _ := os.Readlink(filepath.Join(base, "current"))
		if !healthy(filepath.Base(cur)) {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok v-%s\n", filepath.Base(cur))
	}))
	t.Cleanup(srv.Close)
	calls := filepath.Join(base, "calls")
	log := &bytes.Buffer{}
	return Plan{
		ID: "id-1", BaseDir: base, Release: "b", Previous: "a", Service: "pynq-agent",
		UnitDir: filepath.Join(base, "units"), Systemctl: "echo >>" + calls, Journalctl: "echo last lines of",
		HealthURL: srv.URL + "/healthz", Want: "v-b", Timeout: 500 * time.Millisecond, LockWait: 200 * time.Millisecond,
	}, log
}

func current(t *testing.T, p Plan) string {
	cur, err := os.Readlink(filepath.Join(p.BaseDir, "current"))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(cur)
}

func TestCommitsAHealthyRelease(t *testing.T) {
	p, log := board(t, func(string) bool { return true })
	rec := Run(context.Background(), p, log)
	if rec.State != Committed || current(t, p) != "b" || rec.Health != "ok v-b" {
		t.Fatalf("record %+v, current %s; want committed on b", rec, current(t, p))
	}
	unit, _ := os.ReadFile(filepath.Join(p.UnitDir, "pynq-agent.service"))
	calls, _ := os.ReadFile(filepath.Join(p.BaseDir, "calls"))
	if !strings.Contains(string(unit), "ExecStart=b") || !strings.Contains(string(calls), "daemon-reload") ||
		!strings.Contains(string(calls), "restart pynq-agent") {
		t.Errorf("unit %q, systemctl calls %q: want b's unit installed, reloaded and restarted", unit, calls)
	}
	saved, err := os.ReadFile(RecordPath(p.BaseDir))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseRecord("activation.json", saved); err != nil || got.State != Committed || got.ID != "id-1" {
		t.Errorf("saved record %+v (%v)", got, err)
	}
}

func TestGoesBackFromAnUnhealthyRelease(t *testing.T) {
	p, log := board(t, func(r string) bool { return r == "a" })
	rec := Run(context.Background(), p, log)
	if rec.State != RolledBack || current(t, p) != "a" || !strings.Contains(rec.Error, "not healthy after") {
		t.Fatalf("record %+v, current %s; want rolled back to a", rec, current(t, p))
	}
	failed, err := os.ReadFile(filepath.Join(p.BaseDir, "releases", "b", failedName))
	if err != nil || !strings.Contains(string(failed), "last lines of") {
		t.Errorf("b's failed marker %q (%v): want its last log lines", failed, err)
	}
	unit, _ := os.ReadFile(filepath.Join(p.UnitDir, "pynq-agent.service"))
	if !strings.Contains(string(unit), "ExecStart=a") {
		t.Errorf("unit after going back %q: want a's", unit)
	}
}

func TestRollbackFailedWhenNeitherAnswers(t *testing.T) {
	p, log := board(t, func(string) bool { return false })
	rec := Run(context.Background(), p, log)
	if rec.State != RollbackFailed || rec.RollbackError == "" {
		t.Fatalf("record %+v: want rollback-failed with the reason", rec)
	}
}

func TestChangesNothingWhenSupersededOrIncomplete(t *testing.T) {
	p, log := board(t, func(string) bool { return true })
	p.Previous = "b" // another deploy already moved current
	if rec := Run(context.Background(), p, log); rec.State != Superseded || current(t, p) != "a" {
		t.Errorf("record %+v, current %s: want superseded, a untouched", rec, current(t, p))
	}
	p.Previous = "a"
	os.Remove(filepath.Join(p.BaseDir, "releases", "b", completeName))
	if rec := Run(context.Background(), p, log); rec.State != Refused || current(t, p) != "a" {
		t.Errorf("record %+v, current %s: want refused, a untouched", rec, current(t, p))
	}
}

func TestWaitsForTheDeployLock(t *testing.T) {
	p, log := board(t, func(string) bool { return true })
	unlock, err := lockFile(context.Background(), filepath.Join(p.BaseDir, LockName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rec := Run(context.Background(), p, log); rec.State != Refused || !strings.Contains(rec.Error, "held by another deploy") {
		t.Errorf("record %+v: want refused while the lock is held", rec)
	}
	time.AfterFunc(100*time.Millisecond, unlock)
	p.LockWait = 5 * time.Second
	if rec := Run(context.Background(), p, log); rec.State != Committed {
		t.Errorf("record %+v: want committed once the lock is free", rec)
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"id":"x","release":"r","state":"committed","started":"2026-12-06T14:00:00Z"}`))
	f.Add([]byte(`{"id":""}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := ParseRecord("activation.json", data)
		if err == nil && (rec.ID == "" || rec.Release == "" || rec.State == "") {
			t.Errorf("accepted a record without id, release or state: %+v", rec)
		}
		if err != nil && !strings.Contains(err.Error(), "activation.json") {
			t.Errorf("error does not name the file: %v", err)
		}
	})
}
