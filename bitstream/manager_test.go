package bitstream

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeKernel plays the kernel behind temporary sysfs/configfs trees: writes to the
// firmware attribute or an overlay's dtbo "load" the named file from the firmware
// directory and set the state the test asked for.
type fakeKernel struct {
	t        testing.TB
	m        *Manager
	outcome  State         // state a load ends in (StateOperating for success)
	status   string        // overlay status after a dtbo write ("applied")
	hang     chan struct{} // when set, loads block until it is closed
	hangDone chan struct{} // closed when the blocked load has finished

	mu      sync.Mutex
	writes  []string // "attr=value" in order
	removed []string
}

// newFakeKernel builds a tree with the Xilinx sysfs interface (sysfsIface), configfs
// overlays (configfs) and the fpga manager state file.
func newFakeKernel(tb testing.TB, sysfsIface, configfs bool) *fakeKernel {
	tb.Helper()
	root := tb.TempDir()
	k := &fakeKernel{t: tb, outcome: StateOperating, status: "applied"}
	k.m = &Manager{
		SysfsRoot:    filepath.Join(root, "sys"),
		ConfigfsRoot: filepath.Join(root, "sys/kernel/config"),
		FirmwareDir:  filepath.Join(root, "lib/firmware"),
		Timeout:      5 * time.Second,
		WriteAttr:    k.write,
		RemoveDir:    k.removeDir,
	}
	mkdir(tb, k.m.devDir())
	mkdir(tb, k.m.FirmwareDir)
	k.setState(StatePowerUp)
	if sysfsIface {
		for _, f := range []string{"firmware", "flags"} {
			writeFile(tb, filepath.Join(k.m.devDir(), f), "")
		}
	}
	if configfs {
		mkdir(tb, k.m.overlaysDir())
	}
	return k
}

func mkdir(tb testing.TB, dir string) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
}

func writeFile(tb testing.TB, path, s string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// setState runs on the manager's writer goroutine: Errorf, not Fatal.
func (k *fakeKernel) setState(s State) {
	if err := os.WriteFile(filepath.Join(k.m.devDir(), "state"), []byte(string(s)+"\n"), 0o644); err != nil {
		k.t.Errorf("fake kernel: %v", err)
	}
}

func (k *fakeKernel) write(path string, data []byte) error {
	k.mu.Lock()
	k.writes = append(k.writes, filepath.Base(path)+"="+string(data))
	k.mu.Unlock()
	if _, err := os.Stat(path); err != nil && filepath.Base(path) != "dtbo" {
		return err // sysfs attributes exist or the write fails
	}
	switch filepath.Base(path) {
	case "flags":
		if s := string(data); s != "0" && s != "1" {
			return syscall.EINVAL
		}
		return os.WriteFile(path, data, 0o644)
	case "firmware":
		return k.load(string(data))
	case "dtbo":
		props, err := decodeFDT(data)
		if err != nil {
			return syscall.EINVAL
		}
		name := strings.TrimSuffix(string(props["/fragment@0/__overlay__:firmware-name"]), "\x00")
		err = k.load(name)
		status := k.status
		if err != nil {
			status = "unapplied"
		}
		if werr := os.WriteFile(filepath.Join(filepath.Dir(path), "status"), []byte(status+"\n"), 0o644); werr != nil {
			k.t.Errorf("fake kernel: %v", werr)
		}
		return err
	}
	k.t.Errorf("write to unexpected attribute %s", path)
	return syscall.EPERM
}

// load is what the kernel does with a firmware name: read it, check it, program.
func (k *fakeKernel) load(name string) error {
	if k.hang != nil {
		<-k.hang
		defer close(k.hangDone)
	}
	bin, err := os.ReadFile(filepath.Join(k.m.FirmwareDir, name))
	if err != nil || strings.Contains(name, "/") {
		k.setState(StateFirmwareRequestError)
		return syscall.ENOENT
	}
	if FindSyncWord(bin) < 0 {
		k.setState(StateWriteInitError)
		return syscall.EINVAL
	}
	k.setState(k.outcome)
	if k.outcome.Failed() {
		return syscall.EIO
	}
	return nil
}

func (k *fakeKernel) removeDir(path string) error {
	k.mu.Lock()
	k.removed = append(k.removed, path)
	k.mu.Unlock()
	return os.RemoveAll(path)
}

func TestDetect(t *testing.T) {
	k := newFakeKernel(t, true, false)
	if ok, err := k.m.Detect(); !ok || err != nil {
		t.Errorf("Detect with a manager = %v, %v", ok, err)
	}
	none := &Manager{SysfsRoot: t.TempDir()}
	if ok, err := none.Detect(); ok || err != nil {
		t.Errorf("Detect without = %v, %v", ok, err)
	}
	if _, err := none.Method(); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Method without interfaces: %v", err)
	}
	if _, err := none.Load(context.Background(), "x.bin", false); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Load without interfaces: %v", err)
	}
}

func TestProgramSysfs(t *testing.T) {
	for _, partial := range []bool{false, true} {
		k := newFakeKernel(t, true, true) // sysfs wins over configfs
		bit := writeTemp(t, "design.bit", defaultBit())
		res, err := k.m.Program(context.Background(), bit, Options{Partial: partial})
		if err != nil {
			t.Fatal(err)
		}
		if res.Method != MethodSysfs || res.Firmware != "design.bin" || res.State != StateOperating || res.Header.Part != PartPYNQZ2 {
			t.Errorf("result %+v", res)
		}
		flag := map[bool]string{false: "0", true: "1"}[partial]
		if got := strings.Join(k.writes, " "); got != "flags="+flag+" firmware=design.bin" {
			t.Errorf("writes %q", got)
		}
		bin, err := os.ReadFile(filepath.Join(k.m.FirmwareDir, "design.bin"))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := BinFromPayload(testPayload())
		if string(bin) != string(want) {
			t.Errorf("installed .bin % x, want % x", bin, want)
		}
		entries, _ := os.ReadDir(k.m.FirmwareDir)
		if len(entries) != 1 {
			t.Errorf("firmware dir holds %d files (temporary left behind?)", len(entries))
		}
	}
}

// TestProgramCreatesFirmwareDir: an image without firmware packages has no
// /lib/firmware (found on the emulated board); Program creates it.
func TestProgramCreatesFirmwareDir(t *testing.T) {
	k := newFakeKernel(t, true, false)
	if err := os.RemoveAll(k.m.FirmwareDir); err != nil {
		t.Fatal(err)
	}
	if _, err := k.m.Program(context.Background(), writeTemp(t, "design.bit", defaultBit()), Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(k.m.FirmwareDir, "design.bin")); err != nil {
		t.Error(err)
	}
}

func TestProgramRealBitstreamSysfs(t *testing.T) {
	path, _ := realBit(t)
	k := newFakeKernel(t, true, false)
	res, err := k.m.Program(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Firmware != "W1A3-pynqZ1-Z2.bin" || res.State != StateOperating {
		t.Errorf("result %+v", res)
	}
}

func TestLoadFailureStates(t *testing.T) {
	for _, st := range []State{StateWriteInitError, StateWriteError, StateWriteCompleteError, StateFirmwareRequestError} {
		t.Run(string(st), func(t *testing.T) {
			k := newFakeKernel(t, true, false)
			k.outcome = st
			name := "design.bin"
			if st == StateFirmwareRequestError {
				name = "missing.bin"
			} else {
				bin, _ := BinFromPayload(testPayload())
				writeFile(t, filepath.Join(k.m.FirmwareDir, name), string(bin))
			}
			_, err := k.m.Load(context.Background(), name, false)
			var le *LoadError
			if !errors.As(err, &le) || !errors.Is(err, ErrLoadFailed) {
				t.Fatalf("Load: %v", err)
			}
			if le.State != st || le.Method != MethodSysfs {
				t.Errorf("LoadError %+v", le)
			}
			if !strings.Contains(err.Error(), st.Advice()) || st.Advice() == "" {
				t.Errorf("message %q lacks the advice", err)
			}
		})
	}
}

func TestLoadNotByteSwapped(t *testing.T) {
	// a raw .bit payload copied as "firmware" is what users get wrong most
	k := newFakeKernel(t, true, false)
	writeFile(t, filepath.Join(k.m.FirmwareDir, "raw.bin"), string(testPayload()))
	_, err := k.m.Load(context.Background(), "raw.bin", false)
	var le *LoadError
	if !errors.As(err, &le) || le.State != StateWriteInitError || !strings.Contains(err.Error(), "tobin") {
		t.Fatalf("Load: %v", err)
	}
}

func TestLoadAcceptedButNotOperating(t *testing.T) {
	k := newFakeKernel(t, true, false)
	k.outcome = StateUnknown
	bin, _ := BinFromPayload(testPayload())
	writeFile(t, filepath.Join(k.m.FirmwareDir, "d.bin"), string(bin))
	_, err := k.m.Load(context.Background(), "d.bin", false)
	var le *LoadError
	if !errors.As(err, &le) || le.State != StateUnknown {
		t.Fatalf("Load: %v", err)
	}
}

func TestLoadTimeout(t *testing.T) {
	k := newFakeKernel(t, true, false)
	k.hang, k.hangDone = make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(k.hang); <-k.hangDone }) // before TempDir's cleanup
	k.m.Timeout = 10 * time.Millisecond
	bin, _ := BinFromPayload(testPayload())
	writeFile(t, filepath.Join(k.m.FirmwareDir, "d.bin"), string(bin))
	_, err := k.m.Load(context.Background(), "d.bin", false)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrLoadFailed) {
		t.Fatalf("Load: %v", err)
	}
}

func TestProgramWrongPart(t *testing.T) {
	k := newFakeKernel(t, true, false)
	bit := writeTemp(t, "z1.bit", makeBit("x", "7z010clg400", "d", "t", testPayload()))
	_, err := k.m.Program(context.Background(), bit, Options{})
	if !errors.Is(err, ErrWrongPart) {
		t.Fatalf("Program: %v", err)
	}
	if entries, _ := os.ReadDir(k.m.FirmwareDir); len(entries) != 0 || len(k.writes) != 0 {
		t.Errorf("refused bitstream left files %v, writes %v", entries, k.writes)
	}
	if _, err := k.m.Program(context.Background(), bit, Options{Force: true}); err != nil {
		t.Errorf("forced: %v", err)
	}
}

func TestProgramOverlay(t *testing.T) {
	k := newFakeKernel(t, false, true)
	k.m.OverlayName = "qnn"
	old := filepath.Join(k.m.overlaysDir(), "qnn")
	mkdir(t, old)
	writeFile(t, filepath.Join(old, "status"), "applied\n")
	bit := writeTemp(t, "design.bit", defaultBit())
	res, err := k.m.Program(context.Background(), bit, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != MethodOverlay || res.State != StateOperating {
		t.Errorf("result %+v", res)
	}
	if len(k.removed) != 1 || k.removed[0] != old {
		t.Errorf("removed %v, want the previous overlay %s", k.removed, old)
	}
	if len(k.writes) != 1 || !strings.HasPrefix(k.writes[0], "dtbo=") {
		t.Errorf("writes %q", k.writes)
	}
}

func TestProgramOverlayNotApplied(t *testing.T) {
	k := newFakeKernel(t, false, true)
	k.status = "unapplied"
	bit := writeTemp(t, "design.bit", defaultBit())
	_, err := k.m.Program(context.Background(), bit, Options{})
	var le *LoadError
	if !errors.As(err, &le) || le.Method != MethodOverlay || !strings.Contains(err.Error(), `"unapplied"`) {
		t.Fatalf("Program: %v", err)
	}
}

func TestProgramOverlayLoadFails(t *testing.T) {
	k := newFakeKernel(t, false, true)
	k.outcome = StateWriteError
	bit := writeTemp(t, "design.bit", defaultBit())
	_, err := k.m.Program(context.Background(), bit, Options{})
	var le *LoadError
	if !errors.As(err, &le) || le.State != StateWriteError {
		t.Fatalf("Program: %v", err)
	}
}

func TestStateWords(t *testing.T) {
	for s := range states {
		if s.Describe() == "" {
			t.Errorf("%q has no description", s)
		}
		if s.Failed() && s.Advice() == "" {
			t.Errorf("error state %q has no advice", s)
		}
	}
	if State("bogus").Advice() == "" {
		t.Error("unknown state without advice")
	}
}
