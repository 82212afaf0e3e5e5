package deploy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/fpgadetector/pynq-agent/deploy/activate"
)

func TestFirstDeploy(t *testing.T) {
	t.Parallel()
	b := startBoard(t)
	model := t.TempDir()
	mustWrite(t, filepath.Join(model, "1-0-weights.bin"), []byte("weights"), 0o644)
	mustWrite(t, filepath.Join(model, "sub", "1-0-thres.bin"), []byte("thresholds"), 0o644)
	bundle := b.bundle(model)

	// A dry run reports the plan and changes nothing.
	var plan bytes.Buffer
	opts := b.options()
	opts.DryRun, opts.Out = true, &plan
	if _, err := b.deploy(bundle, b.target(), opts); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if !strings.Contains(plan.String(), "model/sub/1-0-thres.bin") || !strings.Contains(plan.String(), "upload") {
		t.Errorf("dry-run plan lacks the files:\n%s", plan.String())
	}
	if _, err := os.Stat(b.layout.BaseDir); !os.IsNotExist(err) {
		t.Fatalf("dry run created %s (err %v)", b.layout.BaseDir, err)
	}

	res, err := b.deploy(bundle, b.target(), b.options())
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	// The bundle's files and the unit deploy adds.
	if res.Uploaded != len(bundle.Files)+1 || res.Linked != 0 {
		t.Errorf("uploaded %d, linked %d; want %d, 0", res.Uploaded, res.Linked, len(bundle.Files)+1)
	}
	if got := b.current(); got != res.Version {
		t.Errorf("current -> %s, want %s", got, res.Version)
	}
	if !strings.Contains(res.Health, "fake-1") || !strings.Contains(b.healthz(), "ok fake-1") {
		t.Errorf("health %q, want the new version", res.Health)
	}
	rel := filepath.Join(b.layout.BaseDir, "releases", res.Version)
	for _, f := range []string{"pynq-agent", "agent.toml", "model/1-0-weights.bin", "model/sub/1-0-thres.bin", manifestName, completeName} {
		if _, err := os.Stat(filepath.Join(rel, f)); err != nil {
			t.Errorf("release lacks %s: %v", f, err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(b.layout.UnitDir, "pynq-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "Restart=on-failure", "WatchdogSec=", "User=root",
		"ExecStart=" + b.layout.BaseDir + "/current/pynq-agent -config " + b.layout.BaseDir + "/current/agent.toml"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}

	c := b.dial(b.target())
	st, err := GetStatus(context.Background(), c, b.layout)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Current != res.Version || st.Unit != "active" || st.API["version"] != "fake-1" {
		t.Errorf("status: current %s unit %q api %v", st.Current, st.Unit, st.API)
	}
	var logs bytes.Buffer
	if err := Logs(context.Background(), c, Options{Layout: b.layout}, 20, false, &logs); err != nil {
		t.Fatalf("logs: %v", err)
	}
	if !strings.Contains(logs.String(), "fakeagent fake-1 listening") {
		t.Errorf("logs lack the agent's start line:\n%s", logs.String())
	}
}

func TestRedeployUnchangedOnlySwitches(t *testing.T) {
	t.Parallel()
	b := startBoard(t)
	bundle := b.bundle("")
	opts := b.options()
	opts.Keep = 2
	first, err := b.deploy(bundle, b.target(), opts)
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	var versions []string
	pid := b.agentPid()
	for range 2 {
		res, err := b.deploy(bundle, b.target(), opts)
		if err != nil {
			t.Fatalf("redeploy: %v", err)
		}
		if res.Uploaded != 0 || res.BytesUploaded != 0 || res.Linked != len(bundle.Files)+1 {
			t.Errorf("redeploy uploaded %d files (%d bytes), linked %d; want nothing uploaded", res.Uploaded, res.BytesUploaded, res.Linked)
		}
		if b.current() != res.Version {
			t.Errorf("current -> %s, want %s", b.current(), res.Version)
		}
		versions = append(versions, res.Version)
		if p := b.agentPid(); p == pid {
			t.Errorf("agent pid %v unchanged: the switch did not restart it", p)
		} else {
			pid = p
		}
	}
	// Keep 2: the first release is gone, the two redeploys stay.
	if got := b.releases(); !slices.Equal(got, versions) {
		t.Errorf("releases on the board %v, want %v (first was %s)", got, versions, first.Version)
	}
	b.healthz()
}

func TestFailedHealthCheckRollsBack(t *testing.T) {
	t.Parallel()
	b := startBoard(t)
	good, err := b.deploy(b.bundle(""), b.target(), b.options())
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	opts := b.options()
	opts.HealthTimeout = 1500 * time.Millisecond
	res, err := b.deploy(b.bundle("", "fail_health = true"), b.target(), opts)
	var herr *HealthError
	if !errors.As(err, &herr) {
		t.Fatalf("deploy of a failing agent: err %v, want a HealthError", err)
	}
	if herr.RolledBackTo != good.Version || herr.RollbackErr != nil {
		t.Errorf("rolled back to %q (err %v), want %s", herr.RolledBackTo, herr.RollbackErr, good.Version)
	}
	if !strings.Contains(err.Error(), "fail_health=true") {
		t.Errorf("error lacks the failed release's log lines:\n%v", err)
	}
	if b.current() != good.Version {
		t.Errorf("current -> %s, want the old %s", b.current(), good.Version)
	}
	b.healthz()
	if _, err := os.Stat(filepath.Join(b.layout.BaseDir, "releases", res.Version, failedName)); err != nil {
		t.Errorf("failed release not marked: %v", err)
	}
	// Rollback skips the failed release: there is nothing older than the current one.
	if _, err := Rollback(context.Background(), b.dial(b.target()), b.options()); err == nil {
		t.Errorf("rollback with no earlier healthy release succeeded")
	}
}

func TestConnectionCutDuringUpload(t *testing.T) {
	t.Parallel()
	b := startBoard(t)
	good, err := b.deploy(b.bundle(""), b.target(), b.options())
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	model := t.TempDir()
	big := make([]byte, 4<<20)
	_, _ = rand.Read(big)
	mustWrite(t, filepath.Join(model, "params.bin"), big, 0o644)
	bundle := b.bundle(model, "label = big")

	proxy := cuttingProxy(t, b.addr, 1<<20)
	b.trustAddr(proxy)
	cut := b.target()
	host, port, _ := net.SplitHostPort(proxy)
	cut.Host = host
	cut.Port, _ = strconv.Atoi(port)
	if _, err := b.deploy(bundle, cut, b.options()); err == nil {
		t.Fatal("deploy over a cut connection succeeded")
	} else {
		t.Logf("cut deploy: %v", err)
	}
	if b.current() != good.Version {
		t.Errorf("current -> %s after a cut upload, want %s", b.current(), good.Version)
	}
	b.healthz()
	var partial string
	for _, r := range b.releases() {
		if _, err := os.Stat(filepath.Join(b.layout.BaseDir, "releases", r, completeName)); errors.Is(err, os.ErrNotExist) {
			partial = r
		}
	}
	if partial == "" {
		t.Fatalf("no partial release left behind (releases %v): the cut came too late", b.releases())
	}

	res, err := b.deploy(bundle, b.target(), b.options())
	if err != nil {
		t.Fatalf("deploy after the cut: %v", err)
	}
	if !slices.Contains(res.Removed, partial) {
		t.Errorf("removed %v, want the partial %s", res.Removed, partial)
	}
	if slices.Contains(b.releases(), partial) {
		t.Errorf("partial release %s still on the board", partial)
	}
}

func TestChangedHostKeyRefused(t *testing.T) {
	t.Parallel()
	b := startBoard(t)
	other := writeKey(t, filepath.Join(t.TempDir(), "other"))
	kh := filepath.Join(t.TempDir(), "known_hosts")
	b.knownHosts = kh
	b.hostKey, other = other, b.hostKey
	b.trustAddr(b.addr)
	_, err := Dial(context.Background(), b.target())
	if !errors.Is(err, ErrHostKeyChanged) {
		t.Fatalf("dial with a changed host key: err %v, want ErrHostKeyChanged", err)
	}
	for _, want := range []string{ssh.FingerprintSHA256(other), kh + ":1", "ssh-keygen -R"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	tgt := b.target()
	tgt.AcceptNewHostKey = true // trusting new hosts never overrides a changed key
	if _, err := Dial(context.Background(), tgt); !errors.Is(err, ErrHostKeyChanged) {
		t.Errorf("--accept-new-host-key accepted a changed key: %v", err)
	}
}

func TestUnknownHostKey(t *testing.T) {
	t.Parallel()
	b := startBoard(t)
	b.knownHosts = filepath.Join(t.TempDir(), "ssh", "known_hosts")
	_, err := Dial(context.Background(), b.target())
	if !errors.Is(err, ErrUnknownHostKey) || !strings.Contains(err.Error(), "--accept-new-host-key") {
		t.Fatalf("dial to an unknown host: err %v, want ErrUnknownHostKey with a hint", err)
	}
	tgt := b.target()
	tgt.AcceptNewHostKey = true
	b.dial(tgt)
	data, _ := os.ReadFile(b.knownHosts)
	if !strings.Contains(string(data), "[127.0.0.1]:"+strconv.Itoa(b.port)) {
		t.Errorf("known_hosts after trust on first use: %q", data)
	}
	b.dial(b.target()) // now known
}

func TestRollbackCommand(t *testing.T) {
	t.Parallel()
	b := startBoard(t)
	first, err := b.deploy(b.bundle("", "label = a"), b.target(), b.options())
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.deploy(b.bundle("", "label = b"), b.target(), b.options())
	if err != nil {
		t.Fatal(err)
	}
	if second.Uploaded != 1 || second.Linked != 2 {
		t.Errorf("second deploy uploaded %d, linked %d; want only the changed config uploaded", second.Uploaded, second.Linked)
	}
	res, err := Rollback(context.Background(), b.dial(b.target()), b.options())
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if res.Version != first.Version || b.current() != first.Version {
		t.Errorf("rolled back to %s, current %s; want %s", res.Version, b.current(), first.Version)
	}
	b.healthz()
}

func TestRefusesOtherArchitecture(t *testing.T) {
	t.Parallel()
	b := startBoard(t)
	opts := b.options()
	opts.AllowArch = nil // a PYNQ-Z2 only
	_, err := b.deploy(b.bundle(""), b.target(), opts)
	if err == nil || !strings.Contains(err.Error(), "want armv7l") {
		t.Fatalf("deploy to a non-armv7l host: %v", err)
	}
	if _, err := os.Stat(b.layout.BaseDir); !os.IsNotExist(err) {
		t.Errorf("a refused deploy created %s", b.layout.BaseDir)
	}
}

func TestCommandErrorStatus(t *testing.T) {
	t.Parallel()
	b := startBoard(t)
	c := b.dial(b.target())
	_, err := c.Run(context.Background(), "echo oops >&2; exit 7", nil)
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Status != 7 || !strings.Contains(err.Error(), "oops") {
		t.Fatalf("err %v, want exit 7 with stderr", err)
	}
}

func TestAgentAuthentication(t *testing.T) {
	t.Parallel()
	b := startBoard(t)
	data, err := os.ReadFile(b.key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = agent.ServeAgent(keyring, c)
			}()
		}
	}()
	tgt := b.target()
	tgt.Identities = []string{filepath.Join(t.TempDir(), "missing")} // skipped: absent
	tgt.AgentSocket = sock
	b.dial(tgt)

	tgt.AgentSocket = ""
	tgt.Password = func() (string, error) { return "", errors.New("no password in this test") }
	if _, err := Dial(context.Background(), tgt); err == nil || !strings.Contains(err.Error(), "--identity") {
		t.Errorf("dial without keys: %v, want an authentication error with a hint", err)
	}
}

func TestCollectNeedsHWHBesideBit(t *testing.T) {
	dir := t.TempDir()
	bit := filepath.Join(dir, "w1a3.bit")
	mustWrite(t, bit, []byte("bit"), 0o644)
	_, err := Collect(Sources{AgentBinary: fakeAgent(t), Bitstream: bit})
	if err == nil || !strings.Contains(err.Error(), ".hwh") {
		t.Fatalf("bitstream without .hwh: %v", err)
	}
	mustWrite(t, filepath.Join(dir, "w1a3.hwh"), []byte("<xml/>"), 0o644)
	bundle, err := Collect(Sources{AgentBinary: fakeAgent(t), Bitstream: bit})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range bundle.Files {
		names = append(names, f.Name)
	}
	if !slices.Equal(names, []string{"pynq-agent", "w1a3.bit", "w1a3.hwh"}) {
		t.Errorf("release files %v", names)
	}
}

func TestSudoWithPassword(t *testing.T) {
	t.Parallel()
	b := startBoard(t)
	c := b.dial(b.target())
	fake, err := filepath.Abs("testdata/fakesudo.sh")
	if err != nil {
		t.Fatal(err)
	}
	layout := b.layout
	layout.Sudo = "sh " + fake
	for _, tc := range []struct {
		password string
		root     bool
	}{{"secret", true}, {"wrong", false}} {
		opts := Options{Layout: layout, SudoPassword: func() (string, error) { return tc.password, nil }}.withDefaults()
		// A login user that is not root, as on a PYNQ image (xilinx, uid 1000).
		bd := &board{c: c, l: opts.Layout, facts: Facts{Arch: "armv7l", Systemd: true, UID: 1000, FreeBytes: 1 << 30}, opts: opts}
		if err := bd.trySudoPassword(context.Background()); err != nil {
			t.Fatal(err)
		}
		if bd.facts.CanBeRoot() != tc.root {
			t.Fatalf("password %q: can be root %v, want %v", tc.password, bd.facts.CanBeRoot(), tc.root)
		}
		if !tc.root {
			if err := CheckFacts(bd.facts, nil, "", 0); err == nil || !strings.Contains(err.Error(), "cannot become root") {
				t.Errorf("CheckFacts without root: %v", err)
			}
			continue
		}
		// The command after sudo still gets its own input.
		out := filepath.Join(t.TempDir(), "unit")
		if _, err := bd.runRoot(context.Background(), "cat > "+shq(out), strings.NewReader("[Unit]\n")); err != nil {
			t.Fatalf("root command through sudo -S: %v", err)
		}
		if got, _ := os.ReadFile(out); string(got) != "[Unit]\n" {
			t.Errorf("root command's input: %q", got)
		}
	}
}

// A board with several host keys is checked against the type known_hosts has, whichever
// the client would have preferred.
func TestHostKeyTypeFromKnownHosts(t *testing.T) {
	dir := t.TempDir()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	ecKey := filepath.Join(dir, "host_ecdsa")
	mustWrite(t, ecKey, pem.EncodeToMemory(block), 0o600)
	ecPub, err := ssh.NewPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	b := startBoard(t, "HostKey "+ecKey)
	edPub := b.hostKey
	for _, key := range []ssh.PublicKey{ecPub, edPub} {
		b.knownHosts = filepath.Join(t.TempDir(), "known_hosts")
		b.hostKey = key
		b.trustAddr(b.addr)
		c, err := Dial(context.Background(), b.target())
		if err != nil {
			t.Errorf("known_hosts with only %s: %v", key.Type(), err)
			continue
		}
		c.Close()
	}
}

func TestConcurrentDeployRefused(t *testing.T) {
	t.Parallel()
	b := startBoard(t)
	opts := b.options().withDefaults()
	holder := &board{c: b.dial(b.target()), l: opts.Layout, facts: Facts{UID: 0}, opts: opts}
	unlock, err := holder.lock(context.Background())
	if err != nil {
		t.Fatalf("lock: %v", err)
	}
	_, err = b.deploy(b.bundle(""), b.target(), b.options())
	if err == nil || !strings.Contains(err.Error(), "another deploy") {
		t.Fatalf("deploy while another holds the lock: %v", err)
	}
	unlock()
	if _, err := b.deploy(b.bundle(""), b.target(), b.options()); err != nil {
		t.Fatalf("deploy after the lock was released: %v", err)
	}
}

func TestBuildAgentForBoard(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles cmd/pynq-agent; skipped with -short")
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	mod, err := FindModule(wd)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "pynq-agent")
	if err := BuildAgent(context.Background(), mod, bin); err != nil {
		t.Fatal(err)
	}
	if arch, err := elfArch(bin); err != nil || arch != "armv7l" {
		t.Errorf("cross-compiled agent is %q (%v), want armv7l", arch, err)
	}
}

// cancelOn cancels a context when a step line mentions a word.
type cancelOn struct {
	word   string
	cancel context.CancelFunc
}

func (c cancelOn) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.word) {
		c.cancel()
	}
	return len(p), nil
}

// An interrupted deploy does not stop the board's switch: it keeps the new release
// because it answers healthy, with nobody watching.
func TestInterruptedDeployFinishesOnTheBoard(t *testing.T) {
	t.Parallel()
	b := startBoard(t)
	if _, err := b.deploy(b.bundle("", "label = old"), b.target(), b.options()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := b.options()
	opts.Out = cancelOn{word: "switching to", cancel: cancel}
	before := b.lastActivation().ID
	_, err := Deploy(ctx, b.dial(b.target()), b.bundle("", "label = new"), opts)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "finishes it on its own") {
		t.Fatalf("interrupted deploy: %v, want the cancellation and what the board does", err)
	}
	rec := b.waitActivation(t, before)
	if rec.State != activate.Committed {
		t.Errorf("the board's switch ended %s (%s), want committed", rec.State, rec.Error)
	}
	b.checkServing(t, "new")
}

// A switch that never ended (its process killed, the board's power cut) is reported by
// the next deploy.
func TestUnfinishedSwitchReported(t *testing.T) {
	t.Parallel()
	b := startBoard(t)
	if _, err := b.deploy(b.bundle("", "label = a"), b.target(), b.options()); err != nil {
		t.Fatal(err)
	}
	rec := b.lastActivation()
	rec.ID, rec.State = "killed", activate.Switched
	data, _ := json.Marshal(rec)
	mustWrite(t, activate.RecordPath(b.layout.BaseDir), data, 0o644)
	var out bytes.Buffer
	opts := b.options()
	opts.Out = &out
	if _, err := b.deploy(b.bundle("", "label = b"), b.target(), opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "was interrupted") {
		t.Errorf("deploy output lacks the interrupted switch:\n%s", out.String())
	}
	st, err := GetStatus(context.Background(), b.dial(b.target()), b.layout)
	if err != nil || st.LastSwitch == nil || st.LastSwitch.State != activate.Committed {
		t.Errorf("status after the deploy: %+v (%v), want the committed switch", st, err)
	}
}

// Without a board, the dry run's plan is that of a board without releases.
func TestPlanOffline(t *testing.T) {
	t.Parallel()
	model := t.TempDir()
	mustWrite(t, filepath.Join(model, "1-0-weights.bin"), []byte("weights"), 0o644)
	cfg := filepath.Join(t.TempDir(), "agent.toml")
	mustWrite(t, cfg, []byte("listen = \"127.0.0.1:0\"\n"), 0o644)
	bundle, err := Collect(Sources{AgentBinary: fakeAgent(t), Config: cfg, ModelDir: model})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := PlanOffline(bundle, Options{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || len(res.Plan) == 0 || !strings.Contains(out.String(), "model/1-0-weights.bin") ||
		!strings.Contains(out.String(), "current: none") || strings.Contains(out.String(), "skip (on board") {
		t.Errorf("offline plan %+v:\n%s", res, out.String())
	}
}
