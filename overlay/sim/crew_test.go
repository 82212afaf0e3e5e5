package sim

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestCrewCoversEveryRowOnce runs sections of many sizes on crews of several sizes and
// checks that every row is handed out exactly once and that helpers leave when idle.
func TestCrewCoversEveryRowOnce(t *testing.T) {
	c := newCrew(4)
	for threads := 1; threads <= 4; threads++ {
		for n := 0; n <= 50; n++ {
			seen := make([]atomic.Int32, n)
			c.run(n, threads, func(r0, r1 int) {
				for r := r0; r < r1; r++ {
					seen[r].Add(1)
				}
			})
			for r := range seen {
				if got := seen[r].Load(); got != 1 {
					t.Fatalf("%d threads, %d rows: row %d ran %d times", threads, n, r, got)
				}
			}
		}
	}
	deadline := time.Now().Add(3 * crewLinger)
	for c.helpers.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d helpers still there %v after the last section", c.helpers.Load(), 3*crewLinger)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
