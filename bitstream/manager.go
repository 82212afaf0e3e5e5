package bitstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fpgadetector/pynq-agent/internal/unsupported"
)

// Defaults of the real system, used when a Manager field is empty.
const (
	DefaultSysfsRoot    = "/sys"
	DefaultConfigfsRoot = "/sys/kernel/config"
	DefaultFirmwareDir  = "/lib/firmware"
	DefaultDevice       = "fpga0"
	DefaultOverlayName  = "pynq-agent"
	DefaultTimeout      = 30 * time.Second
)

var (
	// ErrNotSupported means the kernel offers neither the Xilinx sysfs interface nor
	// configfs device-tree overlays.
	ErrNotSupported error = unsupported.Error("fpga manager interface not supported by this kernel")
	// ErrLoadFailed is wrapped by every LoadError.
	ErrLoadFailed = errors.New("bitstream load failed")
)

// Method names how a Manager programs the FPGA.
type Method string

const (
	MethodSysfs   Method = "sysfs"   // Xilinx kernels: fpga_manager/fpgaN/{flags,firmware}
	MethodOverlay Method = "overlay" // mainline: configfs device-tree overlay with firmware-name
)

// Manager programs the PL through the Linux FPGA manager. The zero value works on the
// real system; tests point the roots at temporary trees and replace WriteAttr/RemoveDir to
// play the kernel's part.
type Manager struct {
	SysfsRoot    string        // "/sys"
	ConfigfsRoot string        // "/sys/kernel/config"
	FirmwareDir  string        // "/lib/firmware"; the kernel resolves names written below against it
	Device       string        // "fpga0"
	RegionPath   string        // overlay target, "/fpga-full"
	OverlayName  string        // configfs overlay directory name, "pynq-agent"
	Timeout      time.Duration // per load; DefaultTimeout when 0 (the context may be shorter)

	// WriteAttr writes one sysfs/configfs attribute; nil means a single write(2) to the
	// existing file (the kernel acts on that write and fails it when the action fails).
	WriteAttr func(path string, data []byte) error
	// RemoveDir removes a configfs directory (which unapplies an overlay); nil: rmdir.
	RemoveDir func(path string) error
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (m *Manager) devDir() string {
	return filepath.Join(orDefault(m.SysfsRoot, DefaultSysfsRoot), "class", "fpga_manager", orDefault(m.Device, DefaultDevice))
}

func (m *Manager) overlaysDir() string {
	return filepath.Join(orDefault(m.ConfigfsRoot, DefaultConfigfsRoot), "device-tree", "overlays")
}

func (m *Manager) firmwareDir() string { return orDefault(m.FirmwareDir, DefaultFirmwareDir) }

// writeAttr writes data to an existing attribute file with one write call, as sysfs needs.
func writeAttr(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (m *Manager) write(path string, data []byte) error {
	w := m.WriteAttr
	if w == nil {
		w = writeAttr
	}
	if err := w(path, data); err != nil {
		return fmt.Errorf("write %s: %w%s", path, err, rootHint(err))
	}
	return nil
}

// rootHint suggests the usual fix for permission errors on system files.
func rootHint(err error) string {
	if errors.Is(err, fs.ErrPermission) {
		return " (run as root)"
	}
	return ""
}

// Detect reports whether the system has an FPGA manager device (Device under
// <sysfs>/class/fpga_manager). Its absence is not an error: the host is not a Zynq board.
func (m *Manager) Detect() (applies bool, err error) {
	_, err = os.Stat(m.devDir())
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("detect fpga manager: %w", err)
	}
}

// Method tells which interface Load will use: the Xilinx sysfs files when both flags and
// firmware exist, else configfs overlays, else ErrNotSupported.
func (m *Manager) Method() (Method, error) {
	if exists(filepath.Join(m.devDir(), "firmware")) && exists(filepath.Join(m.devDir(), "flags")) {
		return MethodSysfs, nil
	}
	if fi, err := os.Stat(m.overlaysDir()); err == nil && fi.IsDir() {
		return MethodOverlay, nil
	}
	return "", fmt.Errorf("%w: no %s/{firmware,flags} and no %s (use a Xilinx/PYNQ kernel, or mount configfs with CONFIG_OF_OVERLAY and the configfs overlay patch)",
		ErrNotSupported, m.devDir(), m.overlaysDir())
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// State reads the FPGA manager's state.
func (m *Manager) State() (State, error) {
	b, err := os.ReadFile(filepath.Join(m.devDir(), "state"))
	if err != nil {
		return "", fmt.Errorf("read fpga manager state: %w%s", err, rootHint(err))
	}
	return parseState(b), nil
}

// Programmer loads a .bit into the PL. *Manager implements it on a real kernel; the FPGA
// simulation implements it by instantiating the IP models of the design's .hwh.
type Programmer interface {
	Program(ctx context.Context, bitPath string, opt Options) (*Result, error)
}

var _ Programmer = (*Manager)(nil)

// Options control Program.
type Options struct {
	Partial bool   // partial reconfiguration (flags 1); default full (flags 0)
	Force   bool   // program even if the .bit names another part
	Part    string // the board's part; PartPYNQZ2 when empty
}

// Result says how a load went.
type Result struct {
	Method   Method
	Firmware string  // name handed to the kernel (relative to the firmware directory)
	State    State   // the manager's state afterwards ("" when it has no state file)
	Header   *Header // the .bit header (Program only; nil after Load)
}

// LoadError is a failed load, with the kernel's state and advice.
type LoadError struct {
	Method   Method
	Firmware string
	State    State // "" when unreadable
	Err      error // what failed (the write, the overlay status, the timeout)
}

func (e *LoadError) Error() string {
	msg := fmt.Sprintf("load %s through %s: %v", e.Firmware, e.Method, e.Err)
	if e.State != "" {
		msg += fmt.Sprintf("; fpga manager state %q: %s", e.State, e.State.Describe())
		if a := e.State.Advice(); a != "" {
			msg += " (" + a + ")"
		}
	} else {
		msg += " (see dmesg)"
	}
	return msg
}

func (e *LoadError) Unwrap() []error { return []error{ErrLoadFailed, e.Err} }

// Program converts the .bit at bitPath to <FirmwareDir>/<name>.bin (after the part check)
// and loads it.
func (m *Manager) Program(ctx context.Context, bitPath string, opt Options) (*Result, error) {
	name, h, err := m.InstallBin(bitPath, opt)
	if err != nil {
		return nil, err
	}
	res, err := m.Load(ctx, name, opt.Partial)
	if res != nil {
		res.Header = h
	}
	return res, err
}

// BinName is the firmware file name Program uses for a .bit: its base name with .bin.
func BinName(bitPath string) string {
	return strings.TrimSuffix(filepath.Base(bitPath), ".bit") + ".bin"
}

// InstallBin writes the .bin of the .bit at bitPath into the firmware directory
// (atomically; the directory is created when missing) and returns its name there. The
// part check runs before anything is written.
func (m *Manager) InstallBin(bitPath string, opt Options) (string, *Header, error) {
	name := BinName(bitPath)
	// A board image without firmware packages may lack the directory the kernel reads.
	if err := os.MkdirAll(m.firmwareDir(), 0o755); err != nil {
		return "", nil, fmt.Errorf("firmware directory: %w%s", err, rootHint(err))
	}
	h, err := ConvertFile(bitPath, filepath.Join(m.firmwareDir(), name), opt)
	return name, h, err
}

// ConvertFile writes the .bin of the .bit at bitPath to outPath through a temporary file
// in the same directory, refusing a bitstream for another part unless opt.Force.
func ConvertFile(bitPath, outPath string, opt Options) (*Header, error) {
	in, err := os.Open(bitPath)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(outPath), "."+filepath.Base(outPath)+".*")
	if err != nil {
		return nil, fmt.Errorf("create .bin: %w%s", err, rootHint(err))
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	bw := bufio.NewWriterSize(tmp, chunkSize)
	h, err := toBin(bw, bufio.NewReaderSize(in, chunkSize), fi.Size(), func(h *Header) error {
		return h.CheckPart(opt.Part, opt.Force)
	})
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bitPath, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), outPath); err != nil {
		return nil, fmt.Errorf("install .bin: %w%s", err, rootHint(err))
	}
	return h, nil
}

// Load asks the kernel to load firmware (a .bin name relative to the firmware directory).
func (m *Manager) Load(ctx context.Context, firmware string, partial bool) (*Result, error) {
	method, err := m.Method()
	if err != nil {
		return nil, err
	}
	timeout := m.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := &Result{Method: method, Firmware: firmware}
	if method == MethodSysfs {
		err = m.loadSysfs(ctx, firmware, partial)
	} else {
		err = m.loadOverlay(ctx, firmware, partial)
	}
	res.State, _ = m.State() // mainline managers without the state file: ""
	if err == nil && res.State != "" && res.State != StateOperating {
		err = fmt.Errorf("kernel accepted the load but the FPGA is not operating")
	}
	if err != nil {
		return res, &LoadError{Method: method, Firmware: firmware, State: res.State, Err: err}
	}
	return res, nil
}

func (m *Manager) loadSysfs(ctx context.Context, firmware string, partial bool) error {
	flags := "0"
	if partial {
		flags = "1"
	}
	if err := m.write(filepath.Join(m.devDir(), "flags"), []byte(flags)); err != nil {
		return err
	}
	return m.writeCtx(ctx, filepath.Join(m.devDir(), "firmware"), []byte(firmware))
}

// writeCtx is write bounded by ctx. A kernel write cannot be interrupted: on timeout the
// write goes on in the background and the caller gets an error now.
func (m *Manager) writeCtx(ctx context.Context, path string, data []byte) error {
	done := make(chan error, 1)
	go func() { done <- m.write(path, data) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("write %s: %w (the kernel may still be loading; check the state later)", path, ctx.Err())
	}
}

func (m *Manager) loadOverlay(ctx context.Context, firmware string, partial bool) error {
	dtbo, err := FirmwareOverlay(m.RegionPath, firmware, partial)
	if err != nil {
		return err
	}
	dir := filepath.Join(m.overlaysDir(), orDefault(m.OverlayName, DefaultOverlayName))
	if exists(dir) {
		// The same name holds the previous bitstream's overlay: removing it unapplies it.
		remove := m.RemoveDir
		if remove == nil {
			remove = os.Remove
		}
		if err := remove(dir); err != nil {
			return fmt.Errorf("remove previous overlay %s: %w%s", dir, err, rootHint(err))
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("create overlay: %w%s", err, rootHint(err))
	}
	if err := m.writeCtx(ctx, filepath.Join(dir, "dtbo"), dtbo); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return fmt.Errorf("read overlay status: %w", err)
	}
	if st := strings.TrimSpace(string(b)); st != "applied" {
		return fmt.Errorf("overlay %s status %q, want \"applied\" (is %s the fpga region? see dmesg)", dir, st, orDefault(m.RegionPath, DefaultRegionPath))
	}
	return nil
}
