//go:build stb && cgo

package stbref

/*
#cgo LDFLAGS: -lm
#include <stdlib.h>
#include "stbref.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// Available says whether stb_image.h was found when the package was built; without
// it every load fails with ErrMissing and tests should skip.
func Available() bool { return C.stbref_have != 0 }

// ErrMissing is returned by every load when stb_image.h was not installed.
var ErrMissing = errors.New("stb/stb_image.h not installed (apt-get install libstb-dev)")

type loader func(path *C.char, w, h *C.int) *C.uchar

func load(path string, fn loader) (w, h int, rgb []byte, err error) {
	if !Available() {
		return 0, 0, nil, ErrMissing
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var cw, ch C.int
	data := fn(cpath, &cw, &ch)
	if data == nil {
		return 0, 0, nil, fmt.Errorf("stb_image cannot decode %s: %s", path, C.GoString(C.stbref_failure()))
	}
	defer C.stbref_free(unsafe.Pointer(data))
	w, h = int(cw), int(ch)
	return w, h, C.GoBytes(unsafe.Pointer(data), C.int(3*w*h)), nil
}

// LoadRGB decodes an image file as darknet's load_image_stb does (stbi_load with 3
// channels) and returns its interleaved 8-bit RGB samples. On x86 stb_image uses its
// SSE2 kernels where it has them.
func LoadRGB(path string) (w, h int, rgb []byte, err error) {
	return load(path, func(p *C.char, w, h *C.int) *C.uchar { return C.stbref_load(p, w, h) })
}

// LoadRGBScalar is LoadRGB with stb_image built with STBI_NO_SIMD: the plain C paths,
// which an ARM build of darknet (the PYNQ board's, without STBI_NEON) runs.
func LoadRGBScalar(path string) (w, h int, rgb []byte, err error) {
	return load(path, func(p *C.char, w, h *C.int) *C.uchar { return C.stbref_load_scalar(p, w, h) })
}

// Load decodes an image file to 3 channels as darknet's load_image_stb does: CHW
// float32 samples byte/255.
func Load(path string) (*imageio.Image, error) {
	w, h, px, err := LoadRGB(path)
	if err != nil {
		return nil, err
	}
	im := imageio.NewImage(w, h, 3)
	for k := 0; k < 3; k++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				im.Data[(k*h+y)*w+x] = float32(px[3*(y*w+x)+k]) / 255
			}
		}
	}
	return im, nil
}
