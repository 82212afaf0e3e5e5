//go:build stb && cgo

package stbref

/*
#cgo LDFLAGS: -lm
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#include <stdlib.h>
#include <stb/stb_image.h>
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// Load decodes an image file to 3 channels as darknet's load_image_stb does: CHW
// float32 samples byte/255.
func Load(path string) (*imageio.Image, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var w, h, c C.int
	data := C.stbi_load(cpath, &w, &h, &c, 3)
	if data == nil {
		return nil, fmt.Errorf("stb_image cannot decode %s: %s", path, C.GoString(C.stbi_failure_reason()))
	}
	defer C.stbi_image_free(unsafe.Pointer(data))
	W, H := int(w), int(h)
	px := unsafe.Slice((*byte)(unsafe.Pointer(data)), W*H*3)
	im := imageio.NewImage(W, H, 3)
	for k := 0; k < 3; k++ {
		for y := 0; y < H; y++ {
			for x := 0; x < W; x++ {
				im.Data[(k*H+y)*W+x] = float32(px[3*(y*W+x)+k]) / 255
			}
		}
	}
	return im, nil
}
