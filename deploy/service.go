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

	"github.com/fpgadetector/pynq-agent/deploy/activate"
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

// agentVersion asks a release's binary for its version (pynq-agent -version). An agent
// that cannot say is accepted by any healthy answer.
func (b *board) agentVersion(ctx context.Context, version string) string {
	bin := path.Join(b.l.releaseDir(version), BinaryName)
	out, err := b.c.Run(ctx, "timeout 10 "+shq(bin)+" -version", nil)
	if err != nil {
		b.opts.Log.Warn("agent does not report a version; any healthy answer counts", "release", version, "err", err)
		return ""
	}
	// "pynq-agent VERSION": /healthz answers "ok VERSION".
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	f := strings.Fields(line)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

func journalCmd(l Layout, n int, follow bool) string {
	cmd := fmt.Sprintf("%s -u %s -n %d --no-pager", l.Journalctl, shq(l.Service), n)
	if follow {
		cmd += " -f"
	}
	return cmd
}

// removingPrefix names a release directory on its way out.
const removingPrefix = ".removing-"

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
	// Each goes out of sight first (a rename to a hidden name, which the release list
	// skips), so a cut in the middle never leaves a half-removed release that still
	// looks complete; prepare clears what a cut left.
	cmd := "cd " + shq(b.l.releasesDir())
	for _, r := range remove {
		cmd += " && mv -T " + shq(r) + " " + shq(removingPrefix+r) + " && rm -rf " + shq(removingPrefix+r)
	}
	b.hook("prune")
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
	b.hook("lock")
	unlock, err := b.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	b.warnUnfinishedSwitch(ctx)
	if state, err = c.ReadState(ctx, opts.Layout); err != nil {
		return nil, err
	}
	if prev = state.previousRelease(); prev == "" {
		return nil, fmt.Errorf("no earlier complete release to roll back to (current: %s)", orNone(state.Current))
	}
	res.Version, res.Previous = prev, state.Current
	body, err := b.activate(ctx, prev, state.Current, unlock)
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

// Status is what `pynqctl status` shows.
type Status struct {
	Facts    Facts
	Current  string
	Releases []Release
	Unit     string         // systemctl is-active: active, failed, inactive...
	Health   string         // /healthz body, or why it did not answer
	API      map[string]any // /api/status (version, fps, uptime...), nil if unavailable
	// LastSwitch is the board's record of the last switch (deploy or rollback); nil if
	// the board has none.
	LastSwitch *activate.Record
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
	if st.LastSwitch, err = readActivation(ctx, c, l); err != nil {
		return nil, err
	}
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
	if r := s.LastSwitch; r != nil {
		fmt.Fprintf(w, "switch:   %s to %s at %s", r.State, r.Release, r.Updated.Format(time.RFC3339))
		if r.Error != "" {
			fmt.Fprintf(w, " (%s)", r.Error)
		}
		fmt.Fprintln(w)
	}
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
