package web

import (
	"log/slog"
	"sync"
	"time"
)

// authGuard answers refused control tokens: it logs them (at most one line per
// authLogEvery, with the count since the last line, so a guessing client cannot
// flood the journal) and, after authFreeTries refusals in a row, delays each further
// answer (doubling up to authMaxDelay) so that a client gets few guesses per second.
// A good token resets the run.
type authGuard struct {
	mu       sync.Mutex
	fails    int // refusals in a row
	unlogged int // refusals since the last log line
	lastLog  time.Time
	now      func() time.Time
	sleep    func(time.Duration)
}

const (
	authLogEvery  = 10 * time.Second
	authFreeTries = 5
	authMaxDelay  = 2 * time.Second
)

func newAuthGuard() *authGuard { return &authGuard{now: time.Now, sleep: time.Sleep} }

// refused records one refusal and returns after its back-off.
func (g *authGuard) refused(log *slog.Logger, reason string) {
	g.mu.Lock()
	g.fails++
	g.unlogged++
	n, count := g.fails, 0
	if now := g.now(); now.Sub(g.lastLog) >= authLogEvery {
		g.lastLog, count, g.unlogged = now, g.unlogged, 0
	}
	g.mu.Unlock()
	if count > 0 {
		log.Warn("control token refused", "reason", reason, "refusals", count, "in_a_row", n)
	}
	if d := authDelay(n); d > 0 {
		g.sleep(d)
	}
}

// accepted ends a run of refusals.
func (g *authGuard) accepted() {
	g.mu.Lock()
	g.fails = 0
	g.mu.Unlock()
}

// authDelay is the back-off after n refusals in a row: none for the first
// authFreeTries, then 100 ms doubling up to authMaxDelay.
func authDelay(n int) time.Duration {
	if n <= authFreeTries {
		return 0
	}
	return min(100*time.Millisecond<<min(n-authFreeTries-1, 8), authMaxDelay)
}
