package bitstream

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ErrPLChanged means another program reprogrammed (or is reprogramming) the PL after
// this one loaded its bitstream: the registers and buffers the driver knows belong to a
// design that may no longer be there.
var ErrPLChanged = errors.New("the PL was reprogrammed by another program")

// DefaultPYNQStates are where PYNQ 3.x records the overlay it loaded
// (pynq/pl_server/global_pl_state.json in its installed package).
var DefaultPYNQStates = []string{
	"/usr/local/share/pynq-venv/lib/python3*/site-packages/pynq/pl_server/global_pl_state.json",
	"/usr/local/lib/python3*/dist-packages/pynq/pl_server/global_pl_state.json",
	"/usr/lib/python3/dist-packages/pynq/pl_server/global_pl_state.json",
}

// Watch remembers what the board showed right after this program's load, so that a
// cheap Check before each frame notices another program loading the PL: the FPGA
// manager leaving the operating state (a load in progress or failed), or PYNQ's record
// of the loaded overlay appearing or changing (a notebook's Overlay(...) writes it).
// Loads that neither show are seen by telemetry's FPGA-load probe where the kernel
// allows it (the agent adds that check).
type Watch struct {
	m      *Manager
	method Method
	files  map[string]stamp // PYNQ record path -> what it was; a missing file has the zero stamp
	globs  []string
	// globbed is when the patterns were last matched: a record appearing is looked for
	// at most once a second (a glob reads directories), changes to known ones every Check.
	globbed time.Time
}

type stamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

// Watch starts watching after a successful load; pynqStates are glob patterns of
// PYNQ's record (DefaultPYNQStates when nil).
func (m *Manager) Watch(pynqStates []string) (*Watch, error) {
	if pynqStates == nil {
		pynqStates = DefaultPYNQStates
	}
	method, err := m.Method()
	if err != nil {
		return nil, err
	}
	w := &Watch{m: m, method: method, files: map[string]stamp{}, globs: pynqStates, globbed: time.Now()}
	for _, p := range w.records() {
		w.files[p] = stampOf(p)
	}
	return w, w.checkState()
}

// records lists the PYNQ records the patterns match now.
func (w *Watch) records() []string {
	var out []string
	for _, g := range w.globs {
		m, _ := filepath.Glob(g) // only ErrBadPattern; a bad pattern matches nothing
		out = append(out, m...)
	}
	return out
}

func stampOf(p string) stamp {
	fi, err := os.Stat(p)
	if err != nil {
		return stamp{}
	}
	return stamp{size: fi.Size(), mtime: fi.ModTime(), ino: inode(fi)}
}

// Check reports ErrPLChanged, with what changed, when the PL is no longer as this
// program left it.
func (w *Watch) Check() error {
	if err := w.checkState(); err != nil {
		return err
	}
	for p, was := range w.files {
		if now := stampOf(p); now != was {
			return fmt.Errorf("%w: PYNQ's record %s changed%s", ErrPLChanged, p, pynqBitfile(p))
		}
	}
	if time.Since(w.globbed) < time.Second {
		return nil
	}
	w.globbed = time.Now()
	for _, p := range w.records() {
		if _, ok := w.files[p]; !ok {
			return fmt.Errorf("%w: PYNQ's record %s appeared%s", ErrPLChanged, p, pynqBitfile(p))
		}
	}
	return nil
}

// checkState wants the manager operating (sysfs) or the overlay applied (configfs).
func (w *Watch) checkState() error {
	if w.method == MethodOverlay {
		st, err := os.ReadFile(filepath.Join(w.m.overlaysDir(), orDefault(w.m.OverlayName, DefaultOverlayName), "status"))
		if err != nil || string(trimNL(st)) != "applied" {
			return fmt.Errorf("%w: the overlay %s is no longer applied (%q, %v)", ErrPLChanged, orDefault(w.m.OverlayName, DefaultOverlayName), trimNL(st), err)
		}
		return nil
	}
	st, err := w.m.State()
	if err != nil {
		return err
	}
	if st != StateOperating {
		return fmt.Errorf("%w: the FPGA manager is in state %q (%s)", ErrPLChanged, st, st.Describe())
	}
	return nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	return b
}

// pynqBitfile names the bitstream PYNQ's record says it loaded, for the message.
func pynqBitfile(p string) string {
	data, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	var st struct {
		Bitfile string `json:"bitfile_name"`
	}
	if json.Unmarshal(data, &st) != nil || st.Bitfile == "" {
		return ""
	}
	return fmt.Sprintf(" (it names %s)", st.Bitfile)
}
