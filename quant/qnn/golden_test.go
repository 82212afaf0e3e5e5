package qnn

import (
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// TestDogGolden is the acceptance check without cgo: dog.jpg decoded with ImageDecoder
// (imageio's stb_image-exact mode, as the published run decoded it) gives car 86%,
// dog 86%, bicycle 78%, each within 2 points, and no other class.
func TestDogGolden(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole model; skipped in -short")
	}
	img, err := imageio.LoadWith(testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg"), ImageDecoder)
	if err != nil {
		t.Fatal(err)
	}
	checkClasses(t, detectDog(t, img), 0.02)
}
