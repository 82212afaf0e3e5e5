package web

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestAuthGuard: refusals are logged at most once per interval with their count, the
// sixth refusal in a row starts a doubling back-off capped at authMaxDelay, and a good
// token ends the run.
func TestAuthGuard(t *testing.T) {
	now := time.Unix(1000, 0)
	var slept []time.Duration
	g := &authGuard{now: func() time.Time { return now }, sleep: func(d time.Duration) { slept = append(slept, d) }}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	for range 12 {
		g.refused(log, "bad token")
	}
	if n := strings.Count(buf.String(), "control token refused"); n != 1 {
		t.Errorf("%d log lines for 12 refusals in one interval, want 1:\n%s", n, buf.String())
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, 1600 * time.Millisecond, 2 * time.Second, 2 * time.Second}
	if len(slept) != len(want) {
		t.Fatalf("slept %v, want %v", slept, want)
	}
	for i := range want {
		if slept[i] != want[i] {
			t.Fatalf("slept %v, want %v", slept, want)
		}
	}
	now = now.Add(authLogEvery)
	g.refused(log, "bad token")
	if !strings.Contains(buf.String(), "refusals=12") {
		t.Errorf("the second line does not count the refusals since the first:\n%s", buf.String())
	}
	g.accepted()
	slept = nil
	g.refused(log, "bad token")
	if len(slept) != 0 {
		t.Errorf("a refusal after a good token waited %v", slept)
	}
}
