//go:build stb && cgo

package qnn

import (
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/internal/stbref"
)

// TestDogGoldenStb is the acceptance check: decoded like the published run (darknet with
// stb_image), dog.jpg gives car 86%, dog 86%, bicycle 78% within 2 points, nothing else.
// Needs Debian libstb-dev: go test -tags stb ./quant/qnn.
func TestDogGoldenStb(t *testing.T) {
	img, err := stbref.Load(testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	checkClasses(t, detectDog(t, img), 0.02)
}

// TestInputAgreesWithStb: the engine input from imageio's decode agrees with the one
// from stb_image (the published run's decoder) on at least 99% of the 3-bit levels.
func TestInputAgreesWithStb(t *testing.T) {
	path := testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg")
	ref, err := stbref.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := imageio.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFirstLayer(loadModel(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Levels(imageio.Letterbox(ref, 416, 416).Data)
	b, _ := f.Levels(imageio.Letterbox(ours, 416, 416).Data)
	same := 0
	for i := range a {
		if a[i] == b[i] {
			same++
		}
	}
	share := float64(same) / float64(len(a))
	t.Logf("first-layer levels: %.3f%% equal to the stb_image path", 100*share)
	if share < 0.99 {
		t.Errorf("only %.3f%% of the levels agree with the stb_image path", 100*share)
	}
}
