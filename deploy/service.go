package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"strings"
	"time"
)

// Unit renders the systemd unit. The agent runs as root (it maps /dev/mem and drives the
// FPGA manager), tells systemd when it is ready (Type=notify, sd_notify READY=1) and pings
// the watchdog; systemd restarts it when it crashes or hangs. GOMEMLIMIT keeps the Go
// heap from growing to twice the live set on a 512 MB board: without it the agent's RSS
// is 220-270 MB, with 160 MiB it measured 132 MB. MemoryMax is the hard stop: should the
// agent still grow past it, the kernel ends it and systemd restarts it, instead of the
// board's other processes being starved or killed.
func Unit(l Layout, withConfig bool) string {
	l = l.withDefaults()
	cur := l.currentLink()
	exec := path.Join(cur, BinaryName)
	if withConfig {
		exec += " -config " + path.Join(cur, ConfigName)
	}
	return fmt.Sprintf(`# Written by pynqctl deploy; it is rewritten on every deploy.
[Unit]
Description=FPGADetector chair-detection agent
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
User=root
WorkingDirectory=%s
Environment=GOMEMLIMIT=%s
MemoryMax=%s
ExecStart=%s
Restart=on-failure
RestartSec=2
WatchdogSec=30
TimeoutStartSec=120

[Install]
WantedBy=multi-user.target
`, cur, MemoryLimit, MemoryMax, exec)
}

// MemoryLimit is the Go runtime's soft memory limit the unit sets (GOMEMLIMIT).
const MemoryLimit = "160MiB"

// MemoryMax is the unit's hard memory cap (systemd's MemoryMax): the soft limit plus
// room for what the Go runtime does not count (stacks, mapped buffers).
const MemoryMax = "256M"

// installUnit writes the unit when it changed, reloads systemd and enables the service.
func (b *board) installUnit(ctx context.Context, bundle *Bundle) error {
	withConfig := false
	for _, f := range bundle.Files {
		withConfig = withConfig || f.Name == ConfigName
	}
	want := Unit(b.l, withConfig)
	unit := b.l.unitPath()
	have, err := b.runRoot(ctx, "cat "+shq(unit)+" 2>/dev/null || true", nil)
	if err != nil {
		return fmt.Errorf("read %s: %w", unit, err)
	}
	if string(have) == want {
		return nil
	}
	b.step("installing %s", unit)
	cmd := fmt.Sprintf("mkdir -p %s && cat > %s.tmp && mv -f %s.tmp %s", shq(b.l.UnitDir), shq(unit), shq(unit), shq(unit))
	if _, err := b.runRoot(ctx, cmd, strings.NewReader(want)); err != nil {
		return fmt.Errorf("write %s: %w", unit, err)
	}
	if err := b.systemctl(ctx, "daemon-reload"); err != nil {
		return fmt.Errorf("systemctl daemon-reload: %w", err)
	}
	if err := b.systemctl(ctx, "enable", shq(b.l.Service)); err != nil {
		return fmt.Errorf("systemctl enable %s: %w", b.l.Service, err)
	}
	return nil
}

// switchTo points the current symlink at a release: a new link under a temp name renamed
// over the old one, so current always names a whole release.
func (b *board) switchTo(ctx context.Context, version string) error {
	cmd := fmt.Sprintf("cd %s && ln -sfn %s .current.tmp && mv -Tf .current.tmp current",
		shq(b.l.BaseDir), shq(path.Join("releases", version)))
	if _, err := b.runRoot(ctx, cmd, nil); err != nil {
		return fmt.Errorf("switch current to %s: %w", version, err)
	}
	return nil
}

// agentVersion asks a release's binary for its version (pynq-agent -version). An agent
// that cannot say is accepted by any healthy answer.
func (b *board) agentVersion(ctx context.Context, version string) string {
	bin := path.Join(b.l.releaseDir(version), BinaryName)
	out, err := b.c.Run(ctx, "timeout 10 "+shq(bin)+" -version", nil)
	if err != nil {
		b.opts.Log.Warn("agent does not report a version; any healthy answer counts", "release", version, "err", err)
		return ""
	}
	v, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(v)
}

// activate switches to version, restarts and waits for health; on failure it goes back
// to previous and returns a *HealthError with the failed release's logs.
func (b *board) activate(ctx context.Context, version, previous string) (string, error) {
	want := b.agentVersion(ctx, version)
	if err := b.switchTo(ctx, version); err != nil {
		return "", err
	}
	b.step("switched current to %s, restarting %s", version, b.l.Service)
	body, err := b.restartAndWait(ctx, want)
	if err == nil {
		b.step("healthy: %s", body)
		return body, nil
	}
	if ctx.Err() != nil {
		// Interrupted before the new release proved itself: still go back, or the board
		// is left on a release nobody saw healthy.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), b.opts.HealthTimeout+30*time.Second)
		defer cancel()
	}
	herr := &HealthError{Version: version, Err: err, RolledBackTo: previous}
	herr.Logs = b.journal(ctx, 50)
	if _, merr := b.c.Run(ctx, ": > "+shq(path.Join(b.l.releaseDir(version), failedName)), nil); merr != nil {
		b.opts.Log.Warn("could not mark the release failed", "release", version, "err", merr)
	}
	if previous == "" {
		if serr := b.systemctl(ctx, "stop", shq(b.l.Service)); serr != nil {
			b.opts.Log.Warn("stopping the failed service", "err", serr)
		}
		return "", herr
	}
	b.step("release %s is not healthy (%v); switching back to %s", version, err, previous)
	if err := b.switchTo(ctx, previous); err != nil {
		herr.RollbackErr = err
		return "", herr
	}
	if _, err := b.restartAndWait(ctx, b.agentVersion(ctx, previous)); err != nil {
		herr.RollbackErr = err
	}
	return "", herr
}

func (b *board) restartAndWait(ctx context.Context, want string) (string, error) {
	if err := b.systemctl(ctx, "restart", shq(b.l.Service)); err != nil {
		return "", fmt.Errorf("systemctl restart %s: %w", b.l.Service, err)
	}
	return WaitHealthy(ctx, b.c, b.l.AgentAddr, want, b.opts.HealthTimeout)
}

// journal returns the service's last n log lines, or why it could not.
func (b *board) journal(ctx context.Context, n int) string {
	out, err := b.runRoot(ctx, journalCmd(b.l, n, false), nil)
	if err != nil {
		return fmt.Sprintf("(no logs: %v)", err)
	}
	return string(out)
}

func journalCmd(l Layout, n int, follow bool) string {
	cmd := fmt.Sprintf("%s -u %s -n %d --no-pager", l.Journalctl, shq(l.Service), n)
	if follow {
		cmd += " -f"
	}
	return cmd
}

// prune keeps the newest Keep complete releases (current included) and removes the rest.
func (b *board) prune(ctx context.Context, state *State, current string) ([]string, error) {
	kept := 1 // current
	var remove []string
	for i := len(state.Releases) - 1; i >= 0; i-- {
		r := state.Releases[i]
		switch {
		case r.Name == current:
		case !r.Complete:
			// partial releases were removed before the upload
		case !r.Failed && kept < b.opts.Keep:
			kept++
		default:
			remove = append(remove, r.Name)
		}
	}
	if len(remove) == 0 {
		return nil, nil
	}
	cmd := "rm -rf"
	for _, r := range remove {
		cmd += " " + shq(b.l.releaseDir(r))
	}
	if _, err := b.runRoot(ctx, cmd, nil); err != nil {
		return nil, fmt.Errorf("remove old releases: %w", err)
	}
	b.step("removed old releases: %s", strings.Join(remove, " "))
	return remove, nil
}

// Rollback makes the previous complete release current again, restarts and checks
// health; if that release does not come up, the one that was current is restored.
func Rollback(ctx context.Context, c *Conn, opts Options) (*Result, error) {
	opts = opts.withDefaults()
	b, state, err := openBoard(ctx, c, opts)
	if err != nil {
		return nil, err
	}
	if err := CheckFacts(b.facts, opts.AllowArch, "", 0); err != nil {
		return nil, err
	}
	prev := state.previousRelease()
	if prev == "" {
		return nil, fmt.Errorf("no earlier complete release to roll back to (current: %s)", orNone(state.Current))
	}
	res := &Result{Version: prev, Previous: state.Current, Facts: b.facts}
	if opts.DryRun {
		fmt.Fprintf(opts.Out, "would switch current from %s to %s\ndry run: nothing changed\n", orNone(state.Current), prev)
		res.DryRun = true
		return res, nil
	}
	unlock, err := b.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if state, err = c.ReadState(ctx, opts.Layout); err != nil {
		return nil, err
	}
	if prev = state.previousRelease(); prev == "" {
		return nil, fmt.Errorf("no earlier complete release to roll back to (current: %s)", orNone(state.Current))
	}
	res.Version, res.Previous = prev, state.Current
	body, err := b.activate(ctx, prev, state.Current)
	res.Health = body
	return res, err
}

// Healthz asks the agent on the board for /healthz through the SSH connection and
// returns the body of a 200 answer.
func Healthz(ctx context.Context, c *Conn, addr string) (string, error) {
	body, status, err := httpGet(ctx, c, addr, "/healthz")
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("/healthz answers %d: %s", status, strings.TrimSpace(string(body)))
	}
	return strings.TrimSpace(string(body)), nil
}

func httpGet(ctx context.Context, c *Conn, addr, p string) ([]byte, int, error) {
	hc := &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return c.DialContext(ctx, "tcp", addr)
			},
			DisableKeepAlives: true,
		},
		Timeout: 5 * time.Second,
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s on the board: %w", p, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return body, resp.StatusCode, err
}

// WaitHealthy polls /healthz until it answers 200 with a body that mentions want (any
// 200 "ok..." when want is empty), or timeout passes.
func WaitHealthy(ctx context.Context, c *Conn, addr, want string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	var last error
	// Poll quickly at first (a restarted agent often answers within a moment), then back
	// off so a slow start does not flood the board.
	wait := 50 * time.Millisecond
	for {
		body, err := Healthz(ctx, c, addr)
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

// Status is what `pynqctl status` shows.
type Status struct {
	Facts    Facts
	Current  string
	Releases []Release
	Unit     string         // systemctl is-active: active, failed, inactive...
	Health   string         // /healthz body, or why it did not answer
	API      map[string]any // /api/status (version, fps, uptime...), nil if unavailable
}

// GetStatus reads the board's releases, the unit state and the agent's status.
func GetStatus(ctx context.Context, c *Conn, l Layout) (*Status, error) {
	l = l.withDefaults()
	facts, err := c.DetectFacts(ctx, l)
	if err != nil {
		return nil, err
	}
	state, err := c.ReadState(ctx, l)
	if err != nil {
		return nil, err
	}
	st := &Status{Facts: facts, Current: state.Current, Releases: state.Releases}
	out, err := c.Run(ctx, l.Systemctl+" is-active "+shq(l.Service), nil)
	st.Unit = strings.TrimSpace(string(out))
	var ce *CommandError
	if st.Unit == "" && err != nil && !errors.As(err, &ce) {
		return nil, err
	}
	if st.Health, err = Healthz(ctx, c, l.AgentAddr); err != nil {
		st.Health = "not answering: " + err.Error()
	}
	if body, code, err := httpGet(ctx, c, l.AgentAddr, "/api/status"); err == nil && code == http.StatusOK {
		var m map[string]any
		if json.Unmarshal(body, &m) == nil {
			st.API = m
		}
	}
	return st, nil
}

// Format renders the status for a terminal.
func (s *Status) Format(w io.Writer) {
	fmt.Fprintf(w, "board:    %s\n", s.Facts)
	fmt.Fprintf(w, "release:  %s\n", orNone(s.Current))
	fmt.Fprintf(w, "unit:     %s\n", s.Unit)
	fmt.Fprintf(w, "health:   %s\n", s.Health)
	for _, k := range []string{"version", "uptime", "fps"} {
		if v, ok := s.API[k]; ok {
			fmt.Fprintf(w, "%-9s %v\n", k+":", v)
		}
	}
	for _, r := range s.Releases {
		mark := " "
		if r.Name == s.Current {
			mark = "*"
		}
		note := ""
		switch {
		case !r.Complete:
			note = " (partial)"
		case r.Failed:
			note = " (failed health check)"
		}
		fmt.Fprintf(w, "  %s %s%s\n", mark, r.Name, note)
	}
}

// Logs copies the service's journal to w: the last n lines, and with follow the new
// ones until ctx ends.
func Logs(ctx context.Context, c *Conn, opts Options, n int, follow bool, w io.Writer) error {
	opts = opts.withDefaults()
	l := opts.Layout
	facts, err := c.DetectFacts(ctx, l)
	if err != nil {
		return err
	}
	b := &board{c: c, l: l, facts: facts, opts: opts}
	if err := b.trySudoPassword(ctx); err != nil {
		return err
	}
	// Without root the journal may still be readable (adm or systemd-journal group).
	cmd, stdin := journalCmd(l, n, follow), io.Reader(nil)
	if b.facts.CanBeRoot() {
		cmd, stdin = b.root(cmd), b.rootStdin(nil)
	}
	err = c.Stream(ctx, cmd, stdin, w)
	if follow && errors.Is(err, context.Canceled) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("journalctl -u %s: %w", l.Service, err)
	}
	return nil
}
