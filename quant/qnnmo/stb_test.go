//go:build stb && cgo

package qnnmo

import (
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/internal/stbref"
)

// These tests use stb_image itself (Debian libstb-dev, through cgo) as the reference:
// go test -tags stb ./quant/qnnmo.

func needSTB(tb testing.TB) {
	tb.Helper()
	if !stbref.Available() {
		tb.Skip(stbref.ErrMissing)
	}
}

// TestInputAgreesWithStb: the engine input computed from imageio's ImageDecoder mode
// equals, level for level, the one from stb_image (the published run's decoder); the
// libjpeg mode's agreement is logged for comparison.
func TestInputAgreesWithStb(t *testing.T) {
	needSTB(t)
	path := testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg")
	ref, err := stbref.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFirstLayer(loadModel(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := f.Levels(imageio.Letterbox(ref, 416, 416).Data)
	for _, dec := range []imageio.Decoder{ImageDecoder, imageio.LibJPEG} {
		ours, err := imageio.LoadWith(path, dec)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := f.Levels(imageio.Letterbox(ours, 416, 416).Data)
		same := 0
		for i := range want {
			if want[i] == got[i] {
				same++
			}
		}
		t.Logf("%v decoding: %d of %d first-layer levels (%.3f%%) equal to the stb_image path", dec, same, len(want), 100*float64(same)/float64(len(want)))
		if dec == ImageDecoder && same != len(want) {
			t.Errorf("%v decoding: %d of %d levels differ from the stb_image path", dec, len(want)-same, len(want))
		}
	}
}
