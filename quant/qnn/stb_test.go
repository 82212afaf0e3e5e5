//go:build stb && cgo

package qnn

import (
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/qnn/internal/stbref"
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
