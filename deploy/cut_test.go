package deploy

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/deploy/activate"
)

// deploySteps are the places Deploy names to its test hook, in order; from "spawned" on
// the board's own switch is running.
var deploySteps = []string{"lock", "upload", "verify", "finalize", "spawn", "spawned", "watch", "prune"}

// The SSH connection is cut at every step of a deploy, of a healthy and of an unhealthy
// release: the board must end on a complete release that serves healthy, the new one
// exactly when its switch started and it answered healthy; the next deploy must work.
func TestConnectionCutAtEveryDeployStep(t *testing.T) {
	t.Parallel()
	for i, step := range deploySteps {
		for _, healthy := range []bool{true, false} {
			if step == "prune" && !healthy {
				continue // an unhealthy release is never kept, so nothing is pruned
			}
			t.Run(fmt.Sprintf("%s/healthy=%v", step, healthy), func(t *testing.T) {
				t.Parallel()
				b := startBoard(t)
				if _, err := b.deploy(b.bundle("", "label = old"), b.target(), b.options()); err != nil {
					t.Fatal(err)
				}
				extra := []string{"label = new"}
				if !healthy {
					extra = append(extra, "fail_health = true")
				}
				opts := b.options()
				opts.HealthTimeout = 2 * time.Second
				opts.Keep = 1 // the old release is pruned after the switch
				before := b.lastActivation().ID
				b.cutAt(t, step, opts, func(c *Conn, opts Options) error {
					_, err := Deploy(context.Background(), c, b.bundle("", extra...), opts)
					return err
				})
				want := "old"
				if i >= slices.Index(deploySteps, "spawned") {
					rec := b.waitActivation(t, before)
					wantState := activate.RolledBack
					if healthy {
						want, wantState = "new", activate.Committed
					}
					if rec.State != wantState {
						t.Errorf("the board's switch ended %s (%s), want %s", rec.State, rec.Error, wantState)
					}
				}
				b.checkServing(t, want)
				t.Logf("cut at %s, healthy=%v: the board ends on the %s release, serving", step, healthy, want)
				if _, err := b.deploy(b.bundle("", "label = next"), b.target(), b.options()); err != nil {
					t.Fatalf("deploy after the cut: %v", err)
				}
				b.checkServing(t, "next")
			})
		}
	}
}

// The same for a rollback: from "spawned" on the board goes back to the older release.
func TestConnectionCutAtEveryRollbackStep(t *testing.T) {
	t.Parallel()
	for _, step := range []string{"lock", "spawn", "spawned", "watch"} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			b := startBoard(t)
			for _, label := range []string{"a", "b"} {
				if _, err := b.deploy(b.bundle("", "label = "+label), b.target(), b.options()); err != nil {
					t.Fatal(err)
				}
			}
			before := b.lastActivation().ID
			b.cutAt(t, step, b.options(), func(c *Conn, opts Options) error {
				_, err := Rollback(context.Background(), c, opts)
				return err
			})
			want := "b"
			if slices.Index(deploySteps, step) >= slices.Index(deploySteps, "spawned") {
				if rec := b.waitActivation(t, before); rec.State != activate.Committed {
					t.Errorf("the board's rollback ended %s (%s), want committed", rec.State, rec.Error)
				}
				want = "a"
			}
			b.checkServing(t, want)
			t.Logf("rollback cut at %s: the board ends on release %s, serving", step, want)
		})
	}
}

// cutAt runs op over a fresh connection that is closed when op reaches step, and checks
// that op failed (the cut came while it still needed the connection), except for a cut
// while old releases are removed: the deploy is done by then, a failed removal only
// warns.
func (b *testBoard) cutAt(t *testing.T, step string, opts Options, op func(*Conn, Options) error) {
	t.Helper()
	c := b.dial(b.target())
	reached := false
	opts.testHook = func(s string) {
		if s == step && !reached {
			reached = true
			c.Close()
		}
	}
	err := op(c, opts)
	if !reached {
		t.Fatalf("step %q never reached (err %v)", step, err)
	}
	if err == nil && step != "prune" {
		t.Fatalf("cut at %s: the operation reported success", step)
	}
	t.Logf("cut at %s: %v", step, err)
}
