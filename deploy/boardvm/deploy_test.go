package boardvm_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

// board is the running board VM of scripts/board-vm/boot.sh.
type board struct {
	port, key string
}

func vm(t *testing.T) board {
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
	return board{port: read("ssh_port"), key: filepath.Join(read("image"), "id_ed25519")}
}

// pynqctl builds the CLI of this checkout once per test binary.
func pynqctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pynqctl")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/pynqctl")
	cmd.Dir = testutil.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build pynqctl: %v\n%s", err, out)
	}
	return bin
}

// TestDeploySimAgent deploys the armv7 agent to the board VM as to a PYNQ board: login
// as xilinx with sudo's password, upload, systemd unit, switch, health check; then
// `pynqctl status` and `logs` over the same connection. The agent runs the FPGA
// simulation in its process (the VM has no PL) on the published Tinier-YOLO.
func TestDeploySimAgent(t *testing.T) {
	b := vm(t)
	fix := testutil.FixturesDir(t)
	bin := pynqctl(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(cfg, []byte(`backend = "sim"
[bitstream]
path = "W1A3-pynqZ1-Z2.bit"
[model]
dir = "model"
names = ""
[source]
input = "synth:1"
fps = 0.2
[server]
listen = "0.0.0.0:8080"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	conn := []string{"--host", "127.0.0.1", "--port", b.port, "--user", "xilinx", "--identity", b.key,
		"--known-hosts", filepath.Join(dir, "known_hosts"), "--accept-new-host-key"}
	run := func(timeout time.Duration, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(args, conn...)...)
		cmd.Env = append(os.Environ(), "PYNQ_SUDO_PASSWORD=xilinx")
		cmd.Dir = testutil.RepoRoot(t)
		timer := time.AfterFunc(timeout, func() { cmd.Process.Kill() })
		defer timer.Stop()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pynqctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run(15*time.Minute, "deploy",
		"--config", cfg,
		"--bitstream", filepath.Join(fix, "qnn-mo-pynq", "bitstream", "W1A3-pynqZ1-Z2.bit"),
		"--model", filepath.Join(fix, "qnn-mo-pynq", "params"),
		"--health-timeout", "5m")
	t.Logf("deploy:\n%s", out)
	status := run(2*time.Minute, "status")
	if !strings.Contains(status, "active") {
		t.Errorf("status does not show the service active:\n%s", status)
	}
	t.Logf("status:\n%s", status)
	logs := run(2*time.Minute, "logs")
	if !strings.Contains(logs, "pynq-agent") && !strings.Contains(logs, "engine") {
		t.Errorf("logs show nothing of the agent:\n%s", logs)
	}
}
