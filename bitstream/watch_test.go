package bitstream

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Another program reprogramming the PL shows as the manager leaving "operating", or
// as PYNQ's record of the loaded overlay appearing or changing.
func TestWatchSeesAnotherProgramsLoad(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(t *testing.T, k *fakeKernel, record string) // before Watch
		change func(t *testing.T, k *fakeKernel, record string) // another program's doing
		want   string
	}{
		{"state", nil, func(t *testing.T, k *fakeKernel, _ string) { k.setState(StateWrite) }, `state "write"`},
		{"pynq record appears", nil, func(t *testing.T, _ *fakeKernel, rec string) {
			writeFile(t, rec, `{"bitfile_name": "/home/xilinx/base.bit", "active_name": "base"}`)
		}, "appeared (it names /home/xilinx/base.bit)"},
		{"pynq record changes", func(t *testing.T, _ *fakeKernel, rec string) {
			writeFile(t, rec, `{"bitfile_name": "/home/xilinx/old.bit"}`)
		}, func(t *testing.T, _ *fakeKernel, rec string) {
			writeFile(t, rec, `{"bitfile_name": "/home/xilinx/newer.bit"}`)
			later := time.Now().Add(time.Second)
			if err := os.Chtimes(rec, later, later); err != nil {
				t.Fatal(err)
			}
		}, "changed (it names /home/xilinx/newer.bit)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel(t, true, false)
			if _, err := k.m.Program(context.Background(), writeTemp(t, "design.bit", defaultBit()), Options{}); err != nil {
				t.Fatal(err)
			}
			pynq := filepath.Join(t.TempDir(), "venv", "lib", "python3.10", "pynq", "pl_server")
			mkdir(t, pynq)
			rec := filepath.Join(pynq, "global_pl_state.json")
			if tc.before != nil {
				tc.before(t, k, rec)
			}
			w, err := k.m.Watch([]string{filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(pynq))), "python3*", "pynq", "pl_server", "global_pl_state.json")})
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if err := w.Check(); err != nil {
					t.Fatalf("check with nothing changed: %v", err)
				}
			}
			tc.change(t, k, rec)
			w.globbed = time.Time{} // a second later
			err = w.Check()
			if !errors.Is(err, ErrPLChanged) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("check after the change: %v, want ErrPLChanged mentioning %q", err, tc.want)
			}
		})
	}
}

func TestWatchOverlayRemoved(t *testing.T) {
	k := newFakeKernel(t, false, true)
	if _, err := k.m.Program(context.Background(), writeTemp(t, "design.bit", defaultBit()), Options{}); err != nil {
		t.Fatal(err)
	}
	w, err := k.m.Watch([]string{})
	if err != nil {
		t.Fatalf("watch after an overlay load: %v", err)
	}
	if err := w.Check(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(k.m.overlaysDir(), DefaultOverlayName)); err != nil {
		t.Fatal(err)
	}
	if err := w.Check(); !errors.Is(err, ErrPLChanged) {
		t.Errorf("check after the overlay went: %v", err)
	}
}
