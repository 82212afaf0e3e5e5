package qnnmo_test

import (
	"io/fs"
	"path"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/fpgadetector/pynq-agent/agent/demomodel"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
)

// paramFS copies the embedded chair model's parameter directory into a MapFS whose
// files the fuzz targets replace.
func paramFS(tb testing.TB) fstest.MapFS {
	tb.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(demomodel.FS(), demomodel.Network, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(demomodel.FS(), p)
		out[p] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// fuzzLoad replaces file (relative to the model directory) with data and loads the
// directory: an error must name a file of the directory; no panic, no hang.
func fuzzLoad(t *testing.T, fsys fstest.MapFS, file string, data []byte) {
	p := path.Join(demomodel.Network, file)
	old := fsys[p]
	fsys[p] = &fstest.MapFile{Data: data}
	defer func() { fsys[p] = old }()
	if _, err := qnnmo.LoadFS(fsys, demomodel.Network); err != nil && !strings.Contains(err.Error(), demomodel.Network) {
		t.Fatalf("error names no file of the model: %v", err)
	}
}

func FuzzLayersJSON(f *testing.F) {
	fsys := paramFS(f)
	name := demomodel.Network + "-layers.json"
	f.Add(fsys[path.Join(demomodel.Network, name)].Data)
	f.Add([]byte(`{"network":"x","binparam":"b","layers":[{}]}`))
	f.Add([]byte(`{"layers":[{"input":[-1,0,1],"output":[1e9]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzLoad(t, fsys, name, data) })
}

func FuzzBinparam(f *testing.F) {
	fsys := paramFS(f)
	dir := "binparam-" + demomodel.Network
	for _, n := range []string{"1-0-weights.bin", "1-0-thres.bin"} {
		f.Add(n == "1-0-thres.bin", fsys[path.Join(demomodel.Network, dir, n)].Data)
	}
	f.Add(false, []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, thres bool, data []byte) {
		name := "7-13-weights.bin" // a split layer's second half
		if thres {
			name = "7-13-thres.bin"
		}
		fuzzLoad(t, fsys, path.Join(dir, name), data)
	})
}

// FuzzPackedInput feeds the host engine packed inputs of any size, as `qnn run`
// reads them: LayoutForSize refuses what is not whole records, and Run takes the rest
// without panicking.
func FuzzPackedInput(f *testing.F) {
	m, err := demomodel.Load()
	if err != nil {
		f.Fatal(err)
	}
	e, err := qnnmo.NewEngine(m, offload.W1A3, 1)
	if err != nil {
		f.Fatal(err)
	}
	il := e.InLayout()
	px := il.Dim * il.Dim
	f.Add(uint16(il.RecordBytes), byte(7), 0)
	f.Add(uint16(6), byte(0xff), 1)
	f.Add(uint16(1), byte(1), 5)
	f.Fuzz(func(t *testing.T, record uint16, fill byte, extra int) {
		n := int(record)*px + extra%px
		if n < 0 || n > 200*px {
			return
		}
		in := make([]byte, n)
		for i := range in {
			in[i] = fill + byte(i)
		}
		l, err := offload.LayoutForSize(il.Channels, il.Dim, len(in))
		if err != nil {
			return
		}
		if l.Size() != len(in) {
			t.Fatalf("layout %+v of %d bytes for a %d-byte input", l, l.Size(), len(in))
		}
		if record > 24 { // Run's time grows with the input; the layout checks are the point
			return
		}
		if _, err := e.Run(in); err != nil && !strings.Contains(err.Error(), "record") {
			t.Logf("run: %v", err)
		}
	})
}
