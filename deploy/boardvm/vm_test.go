package boardvm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/web"
)

// board is the running board VM of scripts/board-vm/boot.sh.
type board struct {
	run, sshPort, httpPort, key string
}

func vm(t *testing.T) *board {
	t.Helper()
	run := os.Getenv("BOARD_VM_RUN")
	if run == "" {
		t.Skip("no board VM: scripts/test-board-vm.sh boots one and sets BOARD_VM_RUN")
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(run, name))
		if err != nil {
			t.Fatalf("board VM run directory: %v", err)
		}
		return strings.TrimSpace(string(b))
	}
	return &board{run: run, sshPort: read("ssh_port"), httpPort: read("http_port"), key: filepath.Join(read("image"), "id_ed25519")}
}

// ssh runs a shell command on the board as root and returns its output.
func (b *board) ssh(cmd string) (string, error) {
	c := exec.Command(filepath.Join(repoRoot, "scripts/board-vm/ssh.sh"), b.run, cmd)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("on the board: %s: %w\n%s", cmd, err, out)
	}
	return string(out), nil
}

func (b *board) mustSSH(t *testing.T, cmd string) string {
	t.Helper()
	out, err := b.ssh(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// url is the agent's address through QEMU's forward.
func (b *board) url(path string) string { return "http://127.0.0.1:" + b.httpPort + path }

// get fetches an agent endpoint; the body is returned with any status.
func (b *board) get(path string) (int, string, error) {
	c := http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get(b.url(path))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// status reads /api/status.
func (b *board) status(t *testing.T) web.Status {
	t.Helper()
	code, body, err := b.get("/api/status")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/api/status: %d %v %s", code, err, body)
	}
	var st web.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/api/status: %v", err)
	}
	return st
}

// control posts to /api/control with the test token.
func (b *board) control(t *testing.T, req string) {
	t.Helper()
	r, _ := http.NewRequest(http.MethodPost, b.url("/api/control"), strings.NewReader(req))
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(r)
	if err != nil {
		t.Fatalf("control %s: %v", req, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("control %s: %s %s", req, resp.Status, body)
	}
}

// waitFor polls cond every 2 s until it holds or the time is up.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(limit)
	last := ""
	for {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s (last: %s)", what, limit, last)
		}
		time.Sleep(2 * time.Second)
	}
}

// waitHealthy waits until the agent's /healthz answers ok and frames come out.
func (b *board) waitHealthy(t *testing.T, limit time.Duration) {
	t.Helper()
	waitFor(t, "agent healthy", limit, func() (bool, string) {
		code, body, err := b.get("/healthz")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("%d %v %s", code, err, body)
		}
		return true, ""
	})
}

// restartAgent restarts the unit and waits for its health.
func (b *board) restartAgent(t *testing.T) {
	t.Helper()
	b.mustSSH(t, "systemctl reset-failed pynq-agent; systemctl restart pynq-agent")
	b.waitHealthy(t, 4*time.Minute)
}

const token = "board-vm-test-token-5f2d9c1e"

var repoRoot string

// env is what the tests share: the board, pynqctl of this checkout and its flags.
type env struct {
	b    *board
	bin  string // pynqctl
	dir  string
	fix  string // shared fixtures
	conn []string
}

func newEnv(t *testing.T) *env {
	b := vm(t)
	repoRoot = testutil.RepoRoot(t)
	e := &env{b: b, dir: t.TempDir(), fix: testutil.FixturesDir(t)}
	e.bin = filepath.Join(e.dir, "pynqctl")
	cmd := exec.Command("go", "build", "-o", e.bin, "./cmd/pynqctl")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build pynqctl: %v\n%s", err, out)
	}
	e.conn = []string{"--host", "127.0.0.1", "--port", b.sshPort, "--user", "xilinx", "--identity", b.key,
		"--known-hosts", filepath.Join(e.dir, "known_hosts"), "--accept-new-host-key"}
	return e
}

// pynqctl runs a command, with the board's connection flags when board is set.
func (e *env) pynqctl(ctx context.Context, board bool, args ...string) (string, error) {
	if board {
		args = append(args, e.conn...)
	}
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = append(os.Environ(), "PYNQ_SUDO_PASSWORD=xilinx", "PYNQ_TOKEN="+token)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("pynqctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (e *env) must(t *testing.T, timeout time.Duration, board bool, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := e.pynqctl(ctx, board, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// agentConfig is the board's configuration as a user of the emulated board writes it:
// the kernel's FPGA manager, the vivid camera in YUYV at 640x480, the default chair
// model; extra is appended (TOML keys of the last table, or new tables).
func (e *env) agentConfig(t *testing.T, name, extra string) string {
	t.Helper()
	cfg := `backend = "emulated"
[bitstream]
path = "W1A3-pynqZ1-Z2.bit"
pynq_state = []
[model]
dir = "model"
names = "model/chair.names"
[source]
input = "/dev/video0"
format = "yuyv"
width = 640
height = 480
fps = 1
retry = "1s"
retry_max = "4s"
[server]
listen = "0.0.0.0:8080"
token = "` + token + `"
` + extra
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// deployArgs are pynqctl deploy's arguments for a configuration.
func (e *env) deployArgs(cfg string) []string {
	return []string{"deploy", "--config", cfg,
		"--bitstream", e.bitstream(),
		"--model", filepath.Join(repoRoot, "agent/demomodel/tinier-yolo-chair"),
		"--health-timeout", "4m"}
}

func (e *env) bitstream() string {
	return filepath.Join(e.fix, "qnn-mo-pynq", "bitstream", "W1A3-pynqZ1-Z2.bit")
}

// lastSwitch reads the board's record of the last switch (pynqctl status's "switch:" line).
func (e *env) lastSwitch(t *testing.T) string {
	t.Helper()
	out := e.must(t, 2*time.Minute, true, "status")
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "switch:") {
			return l
		}
	}
	return ""
}

// journal is the agent's journal since its last start.
func (b *board) journal(t *testing.T) string {
	t.Helper()
	return b.mustSSH(t, "journalctl -u pynq-agent -o cat --no-pager -n 200")
}

// metric reads one sample value of /metrics ("" when absent).
func (b *board) metric(t *testing.T, prefix string) string {
	t.Helper()
	_, body, err := b.get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			f := strings.Fields(l)
			return f[len(f)-1]
		}
	}
	return ""
}
