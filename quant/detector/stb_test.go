//go:build stb && cgo

package detector_test

import (
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/internal/stbref"
)

// go test -tags stb ./quant/detector: stb_image itself (Debian libstb-dev, through
// cgo) decodes the image, as in the published run.

// TestDogGoldenStb: decoded by stb_image, like the published run, dog.jpg gives car 86%,
// dog 86%, bicycle 78% within 2 points, nothing else.
func TestDogGoldenStb(t *testing.T) {
	if !stbref.Available() {
		t.Skip(stbref.ErrMissing)
	}
	img, err := stbref.Load(testutil.Fixture(t, "qnn-mo-pynq", "images", "dog.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	checkClasses(t, detectDog(t, img), 0.02)
}
