// Package activate is the board's half of a release switch. It points current at a
// release, restarts the service and keeps the switch only when the release answers
// /healthz by a deadline; otherwise it marks the release failed and goes back to the
// previous one, on its own. deploy starts it on the board detached from the SSH session
// (systemd-run, or setsid where systemd does not run), so the board ends on a healthy
// release whether or not the host stays connected (the pattern of Mender's commit step
// and gokrazy's boot check). The host only watches the record it keeps in
// <base>/activation.json.
//
// It has no SSH or host dependencies: pynq-agent carries it as its "activate"
// subcommand.
package activate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Names inside the base directory and a release; deploy uses the same ones.
const (
	RecordName   = "activation.json" // the last activation's record, in the base directory
	LockName     = ".deploy.lock"    // flock held by deploys, rollbacks and activations
	UnitName     = "pynq-agent.service"
	completeName = ".complete"
	failedName   = ".failed"
)

// Plan is one activation.
type Plan struct {
	ID         string        // names this activation in the record, so the host knows its answer
	BaseDir    string        // releases/, current
	Release    string        // the release to make current
	Previous   string        // where current must point now ("" on a first deploy); else another deploy won
	Service    string        // systemd unit name without .service
	UnitDir    string        // where the release's unit file is installed
	Systemctl  string        // command prefix for systemctl, run with sh -c
	Journalctl string        // command prefix for journalctl, run with sh -c
	HealthURL  string        // the agent's /healthz on the board
	Want       string        // text a healthy answer of Release contains (its version); "" accepts any "ok..."
	Timeout    time.Duration // how long Release (and, on the way back, Previous) has to answer
	LockWait   time.Duration // how long to wait for a deploy that still holds the lock
}

// State is where an activation is.
type State string

const (
	Started        State = "started"         // waiting for the lock
	Switched       State = "switched"        // current points at Release, waiting for its health
	Committed      State = "committed"       // Release answered healthy and stays current
	RolledBack     State = "rolled-back"     // Release failed; Previous serves again (or, without one, the service is stopped)
	RollbackFailed State = "rollback-failed" // Release failed and Previous did not come back either
	Superseded     State = "superseded"      // current no longer pointed at Previous: nothing was changed
	Refused        State = "refused"         // the release or the lock was not usable: nothing was changed
)

// Final says whether the activation has ended.
func (s State) Final() bool { return s != Started && s != Switched }

// Record is what the board keeps in <base>/activation.json.
type Record struct {
	ID       string `json:"id"`
	Release  string `json:"release"`
	Previous string `json:"previous"`
	State    State  `json:"state"`
	Error    string `json:"error,omitempty"` // why Release was not kept
	// RollbackError says why Previous did not come back (state rollback-failed).
	RollbackError string    `json:"rollback_error,omitempty"`
	Health        string    `json:"health,omitempty"` // the /healthz answer of the release now serving
	Logs          string    `json:"logs,omitempty"`   // Release's last journal lines when it failed
	Pid           int       `json:"pid"`
	Started       time.Time `json:"started"`
	Updated       time.Time `json:"updated"`
}

// RecordPath is where the record of activations under base lives.
func RecordPath(base string) string { return filepath.Join(base, RecordName) }

// ParseRecord reads a record; name is used in errors.
func ParseRecord(name string, data []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("activation record %s: %w", name, err)
	}
	if r.ID == "" || r.Release == "" || r.State == "" {
		return r, fmt.Errorf("activation record %s: id, release and state are required", name)
	}
	return r, nil
}

// Run carries out the plan and returns the final record, which it has also saved. It
// finishes what it started even when ctx ends: a half-done switch is the one state the
// board must never be left in.
func Run(ctx context.Context, p Plan, log io.Writer) Record {
	a := &activation{p: p, log: log, rec: Record{ID: p.ID, Release: p.Release, Previous: p.Previous,
		State: Started, Pid: os.Getpid(), Started: time.Now().UTC()}}
	// The record is written only under the lock: it belongs to whoever holds it.
	unlock, err := lockFile(ctx, filepath.Join(p.BaseDir, LockName), p.LockWait)
	if err != nil {
		return a.end(Refused, err)
	}
	defer unlock()
	a.save()
	if cur := a.current(); cur != p.Previous {
		return a.end(Superseded, fmt.Errorf("current is %q, not %q: another deploy or rollback changed it first", cur, p.Previous))
	}
	if _, err := os.Stat(a.releaseFile(p.Release, completeName)); err != nil {
		return a.end(Refused, fmt.Errorf("release %s is not complete (%w): deploy it again", p.Release, err))
	}
	ctx = context.WithoutCancel(ctx)
	if err := a.switchTo(ctx, p.Release); err != nil {
		return a.goBack(ctx, err)
	}
	a.rec.State = Switched
	a.save()
	body, err := a.restartAndWait(ctx, p.Want)
	if err != nil {
		return a.goBack(ctx, err)
	}
	a.rec.Health = body
	return a.end(Committed, nil)
}

type activation struct {
	p   Plan
	log io.Writer
	rec Record
}

func (a *activation) logf(format string, args ...any) {
	fmt.Fprintf(a.log, "%s activate %s: %s\n", time.Now().UTC().Format(time.RFC3339), a.p.Release, fmt.Sprintf(format, args...))
}

// save writes the record under a temp name and renames it, so a reader never sees half.
func (a *activation) save() {
	a.rec.Updated = time.Now().UTC()
	data, _ := json.MarshalIndent(a.rec, "", "  ")
	dst := RecordPath(a.p.BaseDir)
	tmp := dst + ".tmp"
	err := os.WriteFile(tmp, append(data, '\n'), 0o644)
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		a.logf("saving the record: %v", err)
	}
	a.logf("%s", a.rec.State)
}

func (a *activation) end(s State, err error) Record {
	a.rec.State = s
	if err != nil {
		a.rec.Error = err.Error()
	}
	a.save()
	return a.rec
}

// goBack marks the release failed (with its logs) and returns to Previous.
func (a *activation) goBack(ctx context.Context, cause error) Record {
	a.logf("release not kept: %v", cause)
	a.rec.Error = cause.Error()
	a.rec.Logs = a.journal(ctx, 50)
	if err := os.WriteFile(a.releaseFile(a.p.Release, failedName), []byte(a.rec.Logs), 0o644); err != nil {
		a.logf("marking the release failed: %v", err)
	}
	if a.p.Previous == "" {
		if err := a.systemctl(ctx, "stop", a.p.Service); err != nil {
			a.logf("stopping the failed service: %v", err)
		}
		return a.end(RolledBack, nil)
	}
	body, err := "", a.switchTo(ctx, a.p.Previous)
	if err == nil {
		body, err = a.restartAndWait(ctx, "")
	}
	if err != nil {
		a.rec.RollbackError = err.Error()
		return a.end(RollbackFailed, nil)
	}
	a.rec.Health = body
	return a.end(RolledBack, nil)
}

func (a *activation) releaseFile(release, name string) string {
	return filepath.Join(a.p.BaseDir, "releases", release, name)
}

func (a *activation) current() string {
	dst, err := os.Readlink(filepath.Join(a.p.BaseDir, "current"))
	if err != nil {
		return ""
	}
	return filepath.Base(dst)
}

// switchTo installs the release's unit when it changed and points current at the
// release: a new link under a temp name renamed over the old one, so current always
// names a whole release.
func (a *activation) switchTo(ctx context.Context, release string) error {
	if err := a.installUnit(ctx, release); err != nil {
		return err
	}
	tmp := filepath.Join(a.p.BaseDir, ".current.tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Join("releases", release), tmp); err != nil {
		return fmt.Errorf("switch current to %s: %w", release, err)
	}
	if err := os.Rename(tmp, filepath.Join(a.p.BaseDir, "current")); err != nil {
		return fmt.Errorf("switch current to %s: %w", release, err)
	}
	a.logf("current -> %s", release)
	return nil
}

// installUnit copies the release's unit file into place when it differs, reloads
// systemd and enables the service. Releases without one keep the installed unit.
func (a *activation) installUnit(ctx context.Context, release string) error {
	want, err := os.ReadFile(a.releaseFile(release, UnitName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read the unit of %s: %w", release, err)
	}
	dst := filepath.Join(a.p.UnitDir, a.p.Service+".service")
	if have, err := os.ReadFile(dst); err == nil && string(have) == string(want) {
		return nil
	}
	if err := os.MkdirAll(a.p.UnitDir, 0o755); err != nil {
		return fmt.Errorf("install unit: %w", err)
	}
	if err := os.WriteFile(dst+".tmp", want, 0o644); err != nil {
		return fmt.Errorf("install unit: %w", err)
	}
	if err := os.Rename(dst+".tmp", dst); err != nil {
		return fmt.Errorf("install unit: %w", err)
	}
	if err := a.systemctl(ctx, "daemon-reload"); err != nil {
		return err
	}
	return a.systemctl(ctx, "enable", a.p.Service)
}

func (a *activation) restartAndWait(ctx context.Context, want string) (string, error) {
	if err := a.systemctl(ctx, "restart", a.p.Service); err != nil {
		return "", err
	}
	return WaitHealthy(ctx, a.p.HealthURL, want, a.p.Timeout)
}

func (a *activation) systemctl(ctx context.Context, args ...string) error {
	cmd := a.p.Systemctl + " " + shellQuote(args...)
	out, err := exec.CommandContext(ctx, "sh", "-c", cmd).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", cmd, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// journal returns the service's last n log lines, or why it could not.
func (a *activation) journal(ctx context.Context, n int) string {
	cmd := fmt.Sprintf("%s -u %s -n %d --no-pager", a.p.Journalctl, shellQuote(a.p.Service), n)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", "-c", cmd).Output()
	if err != nil {
		return fmt.Sprintf("(no logs: %s: %v)", cmd, err)
	}
	return string(out)
}

// WaitHealthy polls url until it answers 200 with a body that contains want (any
// "ok..." when want is empty), or timeout passes.
func WaitHealthy(ctx context.Context, url, want string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	// A request may take a while on a busy board (an emulated one answers in seconds
	// while the detector fills both cores): a tenth of the whole wait, 2 to 10 s.
	hc := &http.Client{Timeout: min(max(timeout/10, 2*time.Second), 10*time.Second)}
	wait := 50 * time.Millisecond
	var last error
	for {
		body, err := get(ctx, hc, url)
		switch {
		case err != nil:
			last = err
		case want != "" && !strings.Contains(body, want):
			last = fmt.Errorf("/healthz answers %q, want version %q", body, want)
		case want == "" && !strings.HasPrefix(body, "ok"):
			last = fmt.Errorf("/healthz answers %q, want \"ok ...\"", body)
		default:
			return body, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("not healthy after %s: %w", timeout, last)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

func get(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("/healthz answers %d: %s", resp.StatusCode, text)
	}
	return text, nil
}

// shellQuote quotes words for a POSIX shell.
func shellQuote(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
