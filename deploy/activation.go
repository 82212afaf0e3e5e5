package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/fpgadetector/pynq-agent/deploy/activate"
)

// withUnit adds the systemd unit to the release, so the board installs it with the
// release it belongs to (and reinstalls the old one on the way back). cleanup removes
// the temp file it is written to on the host.
func withUnit(bundle *Bundle, l Layout) (*Bundle, func(), error) {
	withConfig := false
	for _, f := range bundle.Files {
		withConfig = withConfig || f.Name == ConfigName
	}
	tmp, err := os.CreateTemp("", "pynq-agent-unit-*")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.Remove(tmp.Name()) }
	_, err = tmp.WriteString(Unit(l, withConfig))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	f, herr := hashFile(tmp.Name())
	if err == nil {
		err = herr
	}
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("write the unit file: %w", err)
	}
	f.Name, f.Mode = activate.UnitName, 0o644
	out := *bundle
	out.Files = append(append([]File(nil), bundle.Files...), f)
	out.Content = contentHash(out.Files)
	return &out, cleanup, nil
}

// activate has the board switch to version on its own (pynq-agent activate, detached
// from this SSH session), releases the deploy lock it waits for, and watches its record
// until it ends. The board keeps version only if it answers healthy, whether or not
// this connection lasts.
func (b *board) activate(ctx context.Context, version, previous string, unlock func()) (string, error) {
	want := b.agentVersion(ctx, version)
	id := version + "@" + strconv.FormatInt(b.opts.Now().UnixNano(), 10)
	b.hook("spawn")
	if err := b.spawnActivation(ctx, id, version, previous, want); err != nil {
		return "", err
	}
	b.hook("spawned")
	unlock()
	b.step("the board is switching to %s; it keeps it only if /healthz answers within %s", version, b.opts.HealthTimeout)
	rec, err := b.watchActivation(ctx, id)
	if err != nil {
		return "", fmt.Errorf("watching the switch to %s: %w (the board finishes it on its own and keeps %s only if it answers healthy: check with pynqctl status)",
			version, err, version)
	}
	switch rec.State {
	case activate.Committed:
		b.step("healthy: %s", rec.Health)
		return rec.Health, nil
	case activate.RolledBack, activate.RollbackFailed:
		herr := &HealthError{Version: version, RolledBackTo: previous, Logs: rec.Logs, Err: errors.New(rec.Error)}
		if rec.RollbackError != "" {
			herr.RollbackErr = errors.New(rec.RollbackError)
		}
		return "", herr
	}
	return "", fmt.Errorf("the board did not switch to %s (%s): %s", version, rec.State, rec.Error)
}

// activateLog is where a setsid-started activation writes its lines on the board.
const activateLog = "activate.log"

// spawnActivation starts `pynq-agent activate` of the release's own binary as root, in
// a session of its own: a systemd transient unit where systemd runs, setsid elsewhere.
func (b *board) spawnActivation(ctx context.Context, id, version, previous, want string) error {
	args := []string{path.Join(b.l.releaseDir(version), BinaryName), "activate",
		"-id", id, "-base", b.l.BaseDir, "-release", version, "-previous", previous,
		"-service", b.l.Service, "-unit-dir", b.l.UnitDir,
		"-systemctl", b.l.Systemctl, "-journalctl", b.l.Journalctl,
		"-health-url", "http://" + b.l.AgentAddr + "/healthz", "-want", want,
		"-timeout", b.opts.HealthTimeout.String(), "-lock-wait", b.opts.LockWait.String()}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shq(a)
	}
	cmdline := strings.Join(quoted, " ")
	unit := b.l.Service + "-activate-" + strconv.FormatInt(b.opts.Now().UnixNano(), 10)
	viaSystemd := "systemd-run --quiet --collect --unit=" + shq(unit) + " " + cmdline
	viaSetsid := "setsid " + cmdline + " </dev/null >" + shq(path.Join(b.l.BaseDir, activateLog)) + " 2>&1 &"
	var script string
	switch b.l.Detach {
	case "systemd-run":
		script = viaSystemd
	case "setsid":
		script = viaSetsid
	default:
		script = "if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null; then " + viaSystemd + "; else " + viaSetsid + " fi"
	}
	if _, err := b.runRoot(ctx, script, nil); err != nil {
		return fmt.Errorf("start the switch to %s on the board: %w", version, err)
	}
	return nil
}

// watchActivation polls the board's activation record until the one named id ends.
func (b *board) watchActivation(ctx context.Context, id string) (activate.Record, error) {
	limit := b.opts.LockWait + 2*b.opts.HealthTimeout + time.Minute
	deadline := time.Now().Add(limit)
	var last activate.State
	wait := 100 * time.Millisecond
	for {
		b.hook("watch")
		rec, err := readActivation(ctx, b.c, b.l)
		if err != nil {
			return activate.Record{}, err
		}
		if rec != nil && rec.ID == id {
			if rec.State != last && rec.State == activate.Switched {
				b.step("switched current to %s, restarting %s", rec.Release, b.l.Service)
			}
			last = rec.State
			if rec.State.Final() {
				return *rec, nil
			}
		}
		if time.Now().After(deadline) {
			return activate.Record{}, fmt.Errorf("no outcome after %s (last state %q; its log: %s on the board, or journalctl -u '%s-activate-*')",
				limit, orNone(string(last)), path.Join(b.l.BaseDir, activateLog), b.l.Service)
		}
		select {
		case <-ctx.Done():
			return activate.Record{}, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// hook lets tests act (cut the connection) at a named step.
func (b *board) hook(step string) {
	if b.opts.testHook != nil {
		b.opts.testHook(step)
	}
}

// readActivation reads the board's activation record; nil when there is none.
func readActivation(ctx context.Context, c *Conn, l Layout) (*activate.Record, error) {
	file := path.Join(l.BaseDir, activate.RecordName)
	out, err := c.Run(ctx, "cat "+shq(file)+" 2>/dev/null || true", nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		return nil, nil
	}
	rec, err := activate.ParseRecord(file, out)
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

// warnUnfinishedSwitch tells the user when the last switch never ended: with the deploy
// lock held no switch runs, so it was stopped (a power cut, a kill) and current may name
// a release nobody saw healthy.
func (b *board) warnUnfinishedSwitch(ctx context.Context) {
	rec, err := readActivation(ctx, b.c, b.l)
	if err != nil {
		b.opts.Log.Warn("reading the last switch", "err", err)
		return
	}
	if rec != nil && !rec.State.Final() {
		b.step("warning: the switch to %s was interrupted (%s at %s): the board may be on a release never seen healthy",
			rec.Release, rec.State, rec.Updated.Format(time.RFC3339))
	}
}
