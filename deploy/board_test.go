package deploy

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/fpgadetector/pynq-agent/deploy/activate"
)

// The "board" in these tests is this machine: a private sshd on a loopback port, a base
// dir under t.TempDir(), and testdata/servicectl.sh in place of systemctl/journalctl,
// running the stand-in agent (internal/fakeagent) built once per test binary.

var (
	fakeAgentOnce sync.Once
	fakeAgentPath string
	fakeAgentErr  error
	fakeAgentDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fakeAgentDir != "" {
		os.RemoveAll(fakeAgentDir)
	}
	os.Exit(code)
}

// fakeAgent builds internal/fakeagent for the host (version "fake-1"): sshd runs it on
// this machine. The test binary itself may be a cross build run under qemu-user
// (scripts/test-arm.sh), whose environment carries GOARCH=arm, so the host's GOOS and
// GOARCH are set explicitly; the board's arch check then compares the fake agent's ELF
// machine with the host's uname -m.
func fakeAgent(tb testing.TB) string {
	tb.Helper()
	fakeAgentOnce.Do(func() {
		fakeAgentDir, fakeAgentErr = os.MkdirTemp("", "deploy-fakeagent")
		if fakeAgentErr != nil {
			return
		}
		var host []byte
		if host, fakeAgentErr = exec.Command("go", "env", "GOHOSTOS", "GOHOSTARCH").Output(); fakeAgentErr != nil {
			fakeAgentErr = fmt.Errorf("go env GOHOSTOS GOHOSTARCH: %w", fakeAgentErr)
			return
		}
		goos, goarch, _ := strings.Cut(strings.TrimSpace(string(host)), "\n")
		fakeAgentPath = filepath.Join(fakeAgentDir, "pynq-agent")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -X main.version=fake-1", "-o", fakeAgentPath, "./internal/fakeagent")
		// Later entries win: the host's platform overrides an inherited cross build's.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+strings.TrimSpace(goarch))
		if out, err := cmd.CombinedOutput(); err != nil {
			fakeAgentErr = fmt.Errorf("build fakeagent: %v\n%s", err, out)
		}
	})
	if fakeAgentErr != nil {
		tb.Fatal(fakeAgentErr)
	}
	return fakeAgentPath
}

// testBoard is a running sshd plus the layout the deploys use.
type testBoard struct {
	tb         testing.TB
	dir        string
	addr       string
	port       int
	key        string // client private key
	knownHosts string
	hostKey    ssh.PublicKey
	layout     Layout
	agentAddr  string
}

// startBoard starts the board; extraConfig lines are appended to sshd_config.
func startBoard(tb testing.TB, extraConfig ...string) *testBoard {
	tb.Helper()
	const sshd = "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		tb.Skipf("deploy tests need OpenSSH's sshd (%s missing: apt-get install -y openssh-server)", sshd)
	}
	dir := tb.TempDir()
	b := &testBoard{tb: tb, dir: dir}
	hostKey := writeKey(tb, filepath.Join(dir, "host_ed25519"))
	b.hostKey = hostKey
	clientPub := writeKey(tb, filepath.Join(dir, "id_ed25519"))
	b.key = filepath.Join(dir, "id_ed25519")
	mustWrite(tb, filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o600)
	if os.Geteuid() == 0 {
		_ = os.MkdirAll("/run/sshd", 0o755) // sshd's privilege separation directory
	}
	b.port = freePort(tb)
	b.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/host_ed25519
PidFile %s/sshd.pid
AuthorizedKeysFile %s/authorized_keys
PermitRootLogin yes
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
LogLevel ERROR
SetEnv SHLVL=1
%s
`, b.port, dir, dir, dir, strings.Join(extraConfig, "\n"))
	mustWrite(tb, filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600)
	var stderr bytes.Buffer
	cmd := exec.Command(sshd, "-f", filepath.Join(dir, "sshd_config"), "-D", "-e")
	cmd.Stderr = &stderr
	// Session processes of a connection a test left open hold the stderr pipe: do not
	// wait for them forever.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start sshd: %v", err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	waitBanner(tb, b.addr, &stderr)

	b.knownHosts = filepath.Join(dir, "known_hosts")
	b.trustAddr(b.addr)

	shim, err := filepath.Abs("testdata/servicectl.sh")
	if err != nil {
		tb.Fatal(err)
	}
	svc, units := filepath.Join(dir, "svc"), filepath.Join(dir, "systemd")
	b.agentAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(tb)))
	b.layout = Layout{
		BaseDir:    filepath.Join(dir, "opt", "pynq-agent"),
		UnitDir:    units,
		Systemctl:  fmt.Sprintf("sh %s %s %s systemctl", shim, svc, units),
		Journalctl: fmt.Sprintf("sh %s %s %s journalctl", shim, svc, units),
		AgentAddr:  b.agentAddr,
	}
	tb.Cleanup(func() { killPidFile(filepath.Join(svc, "pynq-agent.pid")) })
	return b
}

// trustAddr records the board's host key for addr in known_hosts.
func (b *testBoard) trustAddr(addr string) {
	f, err := os.OpenFile(b.knownHosts, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.tb.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(addr)}, b.hostKey))
}

func (b *testBoard) target() Target {
	u, err := user.Current()
	if err != nil {
		b.tb.Fatal(err)
	}
	return Target{Host: "127.0.0.1", Port: b.port, User: u.Username, Identities: []string{b.key},
		KnownHosts: b.knownHosts, Timeout: 10 * time.Second}
}

func (b *testBoard) dial(t Target) *Conn {
	b.tb.Helper()
	c, err := Dial(context.Background(), t)
	if err != nil {
		b.tb.Fatalf("dial: %v", err)
	}
	b.tb.Cleanup(func() { c.Close() })
	return c
}

func (b *testBoard) options() Options {
	arch, err := elfArch(fakeAgent(b.tb))
	if err != nil {
		b.tb.Fatal(err)
	}
	return Options{Layout: b.layout, AllowArch: []string{arch}, HealthTimeout: 10 * time.Second}
}

// bundle assembles a release of the fake agent with a config; extra lines go into the
// config, so "label = x" makes a release with different content.
func (b *testBoard) bundle(modelDir string, extra ...string) *Bundle {
	b.tb.Helper()
	cfgDir := b.tb.TempDir()
	cfg := filepath.Join(cfgDir, "agent.toml")
	mustWrite(b.tb, cfg, []byte(fmt.Sprintf("listen = %q\n%s\n", b.agentAddr, strings.Join(extra, "\n"))), 0o644)
	bundle, err := Collect(Sources{AgentBinary: fakeAgent(b.tb), Config: cfg, ModelDir: modelDir})
	if err != nil {
		b.tb.Fatal(err)
	}
	return bundle
}

func (b *testBoard) deploy(bundle *Bundle, t Target, opts Options) (*Result, error) {
	b.tb.Helper()
	c := b.dial(t)
	return Deploy(context.Background(), c, bundle, opts)
}

// current reads where the current symlink points.
func (b *testBoard) current() string {
	b.tb.Helper()
	dst, err := os.Readlink(filepath.Join(b.layout.BaseDir, "current"))
	if err != nil {
		b.tb.Fatalf("current symlink: %v", err)
	}
	return filepath.Base(dst)
}

// healthz asks the agent directly (the test runs on the "board").
func (b *testBoard) healthz() string {
	b.tb.Helper()
	resp, err := http.Get("http://" + b.agentAddr + "/healthz")
	if err != nil {
		b.tb.Fatalf("agent not serving: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.tb.Fatalf("agent /healthz: %d %s", resp.StatusCode, body)
	}
	return string(body)
}

// agentPid asks the stand-in agent for its process id.
func (b *testBoard) agentPid() float64 {
	b.tb.Helper()
	resp, err := http.Get("http://" + b.agentAddr + "/api/status")
	if err != nil {
		b.tb.Fatalf("agent not serving: %v", err)
	}
	defer resp.Body.Close()
	var st struct{ Pid float64 }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Pid == 0 {
		b.tb.Fatalf("agent /api/status: %v", err)
	}
	return st.Pid
}

func (b *testBoard) releases() []string {
	b.tb.Helper()
	ents, err := os.ReadDir(filepath.Join(b.layout.BaseDir, "releases"))
	if err != nil {
		b.tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func writeKey(tb testing.TB, path string) ssh.PublicKey {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		tb.Fatal(err)
	}
	mustWrite(tb, path, pem.EncodeToMemory(block), 0o600)
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return sshPub
}

func mustWrite(tb testing.TB, path string, data []byte, mode os.FileMode) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		tb.Fatal(err)
	}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitBanner waits until sshd answers with its version banner.
func waitBanner(tb testing.TB, addr string, stderr *bytes.Buffer) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 4)
			_, err = io.ReadFull(c, buf)
			c.Close()
			if err == nil && string(buf) == "SSH-" {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("sshd did not come up on %s: %s", addr, stderr.String())
}

func killPidFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

// cuttingProxy forwards TCP to target and cuts every connection once cutAfter bytes
// went from the client to the server: a link that drops in the middle of an upload.
func cuttingProxy(tb testing.TB, target string, cutAfter int64) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(client, server)
				client.Close()
			}()
			go func() {
				defer wg.Done()
				_, _ = io.CopyN(server, client, cutAfter)
				client.Close()
				server.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// lastActivation reads the board's activation record (the zero record if none).
func (b *testBoard) lastActivation() activate.Record {
	file := activate.RecordPath(b.layout.BaseDir)
	data, err := os.ReadFile(file)
	if err != nil {
		return activate.Record{}
	}
	rec, _ := activate.ParseRecord(file, data)
	return rec
}

// waitActivation waits for an activation other than the one named notID to end on the
// board and returns its record.
func (b *testBoard) waitActivation(tb testing.TB, notID string) activate.Record {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		rec := b.lastActivation()
		if rec.ID != notID && rec.State.Final() {
			return rec
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the board's activation did not end in 60 s: %+v", rec)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkServing checks that current names a complete release that never failed, that the
// agent answers healthy, and that the agent serving is that release's (its config's
// label, which the stand-in reports in /api/status).
func (b *testBoard) checkServing(tb testing.TB, label string) {
	tb.Helper()
	cur := b.current()
	rel := filepath.Join(b.layout.BaseDir, "releases", cur)
	if _, err := os.Stat(filepath.Join(rel, completeName)); err != nil {
		tb.Errorf("current release %s is not complete: %v", cur, err)
	}
	if _, err := os.Stat(filepath.Join(rel, failedName)); err == nil {
		tb.Errorf("current release %s failed its health check", cur)
	}
	cfg, err := os.ReadFile(filepath.Join(rel, ConfigName))
	if err != nil || !strings.Contains(string(cfg), "label = "+label+"\n") {
		tb.Errorf("current release %s has config %q (%v), want label %s", cur, cfg, err, label)
	}
	b.healthz()
	resp, err := http.Get("http://" + b.agentAddr + "/api/status")
	if err != nil {
		tb.Fatalf("agent not serving: %v", err)
	}
	defer resp.Body.Close()
	var st struct{ Label string }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Label != label {
		tb.Errorf("the agent serving is release %q (%v), want %q", st.Label, err, label)
	}
}
