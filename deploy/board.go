package deploy

import (
	"bufio"
	"context"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Layout says where the agent lives on the board and how its service is managed. The
// defaults match a PYNQ image; tests point every path and command at temp trees and shims.
type Layout struct {
	BaseDir    string // releases/, current -> releases/<version>; default /opt/pynq-agent
	Service    string // systemd unit name without .service; default pynq-agent
	UnitDir    string // where the unit file goes; default /etc/systemd/system
	Systemctl  string // command prefix for systemctl; default "systemctl"
	Journalctl string // command prefix for journalctl; default "journalctl"
	Sudo       string // sudo command for a login user who is not root (deploy adds -n or -S); default "sudo"
	AgentAddr  string // the agent's HTTP address as seen on the board; default 127.0.0.1:8080
	// Detach says how the board-side switch is started outside the SSH session:
	// "systemd-run" (a transient unit), "setsid", or "" for systemd-run where systemd
	// runs and setsid elsewhere.
	Detach string
}

// DefaultLayout is the layout on a PYNQ board.
func DefaultLayout() Layout {
	return Layout{
		BaseDir:    "/opt/pynq-agent",
		Service:    "pynq-agent",
		UnitDir:    "/etc/systemd/system",
		Systemctl:  "systemctl",
		Journalctl: "journalctl",
		Sudo:       "sudo",
		AgentAddr:  "127.0.0.1:8080",
	}
}

// withDefaults fills empty fields from DefaultLayout.
func (l Layout) withDefaults() Layout {
	d := DefaultLayout()
	for _, f := range []struct{ v, def *string }{
		{&l.BaseDir, &d.BaseDir}, {&l.Service, &d.Service}, {&l.UnitDir, &d.UnitDir},
		{&l.Systemctl, &d.Systemctl}, {&l.Journalctl, &d.Journalctl}, {&l.Sudo, &d.Sudo},
		{&l.AgentAddr, &d.AgentAddr},
	} {
		if *f.v == "" {
			*f.v = *f.def
		}
	}
	return l
}

func (l Layout) releasesDir() string        { return path.Join(l.BaseDir, "releases") }
func (l Layout) releaseDir(v string) string { return path.Join(l.BaseDir, "releases", v) }
func (l Layout) currentLink() string        { return path.Join(l.BaseDir, "current") }
func (l Layout) unitPath() string           { return path.Join(l.UnitDir, l.Service+".service") }

// uploadDir is where a login user who is not root uploads; root copies from it.
func (l Layout) uploadDir() string { return path.Join(l.BaseDir, ".upload") }

// Facts are what deploy learns about the board before changing anything.
type Facts struct {
	Arch   string // uname -m, "armv7l" on a PYNQ-Z2
	Kernel string // uname -r
	UID    int    // id -u of the login user
	Sudo   bool   // the login user can become root with sudo
	// SudoPassword: sudo asks for the user's password (checked with Options.SudoPassword).
	SudoPassword bool
	Systemd      bool   // Layout.Systemctl --version works
	FreeBytes    int64  // available on the filesystem that holds (or will hold) BaseDir
	Mount        string // that filesystem's mount point
}

// CanBeRoot says whether service commands can run as root.
func (f Facts) CanBeRoot() bool { return f.UID == 0 || f.Sudo }

func (f Facts) String() string {
	root := "no"
	switch {
	case f.UID == 0:
		root = "yes (logged in as root)"
	case f.Sudo && f.SudoPassword:
		root = "yes (sudo with password)"
	case f.Sudo:
		root = "yes (sudo)"
	}
	sd := "no"
	if f.Systemd {
		sd = "yes"
	}
	return fmt.Sprintf("arch %s, kernel %s, %s free on %s, systemd %s, root %s",
		f.Arch, f.Kernel, humanBytes(f.FreeBytes), f.Mount, sd, root)
}

// DetectFacts asks the board, in one round trip, for the facts deploy checks.
func (c *Conn) DetectFacts(ctx context.Context, l Layout) (Facts, error) {
	l = l.withDefaults()
	script := fmt.Sprintf(`echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
echo "uid=$(id -u)"
d=%s; while [ ! -e "$d" ]; do d=$(dirname "$d"); done
echo "df=$(df -Pk "$d" | tail -n 1)"
if %s --version >/dev/null 2>&1; then echo systemd=yes; else echo systemd=no; fi
if [ "$(id -u)" != 0 ] && %s -n true >/dev/null 2>&1; then echo sudo=yes; else echo sudo=no; fi
`, shq(l.BaseDir), l.Systemctl, l.Sudo)
	out, err := c.Run(ctx, "sh -s", strings.NewReader(script))
	if err != nil {
		return Facts{}, fmt.Errorf("detect board facts: %w", err)
	}
	return parseFacts(string(out))
}

// parseFacts reads the key=value lines DetectFacts prints.
func parseFacts(out string) (Facts, error) {
	var f Facts
	sc := bufio.NewScanner(strings.NewReader(out))
	for n := 1; sc.Scan(); n++ {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			return f, fmt.Errorf("board facts line %d: %q is not key=value", n, sc.Text())
		}
		switch k {
		case "arch":
			f.Arch = v
		case "kernel":
			f.Kernel = v
		case "uid":
			uid, err := strconv.Atoi(v)
			if err != nil {
				return f, fmt.Errorf("board facts line %d: uid %q: %w", n, v, err)
			}
			f.UID = uid
		case "df":
			free, mount, err := parseDF(v)
			if err != nil {
				return f, fmt.Errorf("board facts line %d: %w", n, err)
			}
			f.FreeBytes, f.Mount = free, mount
		case "systemd":
			f.Systemd = v == "yes"
		case "sudo":
			f.Sudo = v == "yes"
		}
	}
	if f.Arch == "" {
		return f, fmt.Errorf("board facts: no architecture reported (is uname on the board's PATH?)")
	}
	return f, nil
}

// parseDF reads the data line of `df -Pk`: filesystem, 1024-blocks, used, available,
// capacity, mount point. Counted from the end, so a device name with spaces still parses.
func parseDF(line string) (free int64, mount string, err error) {
	fields := strings.Fields(line)
	if len(fields) < 6 {
		return 0, "", fmt.Errorf("df output %q: want 6 columns", line)
	}
	n := len(fields)
	kb, err := strconv.ParseInt(fields[n-3], 10, 64)
	if err != nil || kb < 0 || kb > 1<<50 {
		return 0, "", fmt.Errorf("df output %q: available %q is not a size in KiB", line, fields[n-3])
	}
	return kb * 1024, fields[n-1], nil
}

// CheckFacts refuses boards deploy cannot serve, with what to do about it.
func CheckFacts(f Facts, allowArch []string, binArch string, need int64) error {
	if len(allowArch) == 0 {
		allowArch = []string{"armv7l"}
	}
	if !slices.Contains(allowArch, f.Arch) {
		return fmt.Errorf("board architecture is %s, want %s (a PYNQ-Z2 reports armv7l: is --host the board?)",
			f.Arch, strings.Join(allowArch, " or "))
	}
	if binArch != "" && !archMatches(binArch, f.Arch) {
		return fmt.Errorf("the agent binary is built for %s but the board is %s (build with GOOS=linux GOARCH=arm GOARM=7, or pass the right --agent-binary)",
			binArch, f.Arch)
	}
	if !f.Systemd {
		return fmt.Errorf("systemd not found on the board (systemctl --version failed): the agent runs as a systemd service")
	}
	if !f.CanBeRoot() {
		return fmt.Errorf("the login user cannot become root (uid %d: sudo -n true failed and no sudo password worked): the agent needs root for /dev/mem and the FPGA manager; give the password (PYNQ_SUDO_PASSWORD or the prompt), allow passwordless sudo for this user, or log in as root", f.UID)
	}
	const margin = 1 << 20
	if need+margin > f.FreeBytes {
		return fmt.Errorf("not enough space on the board's %s: need %s, %s free (remove old releases or files)",
			f.Mount, humanBytes(need+margin), humanBytes(f.FreeBytes))
	}
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
