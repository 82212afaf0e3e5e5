//go:build darknet && cgo

package darknetref

/*
#cgo CFLAGS: -I/usr/lib/darknet/include
#cgo LDFLAGS: -L/usr/lib/darknet -ldarknet -Wl,-rpath,/usr/lib/darknet
#include <stdlib.h>
#include "darknet.h"

// Accessors for fields cgo cannot reach conveniently (arrays of structs).
static int dn_layers(network *net) { return net->n; }
static int dn_w(network *net) { return net->w; }
static int dn_h(network *net) { return net->h; }
static int dn_c(network *net) { return net->c; }
static float *dn_output(network *net, int i, int *n, int *w, int *h, int *c) {
	layer l = net->layers[i];
	*n = l.outputs; *w = l.out_w; *h = l.out_h; *c = l.out_c;
	return l.output;
}
static detection *dn_det(detection *d, int i) { return d + i; }
// darknet's examples take the class count from the last layer: get_region_detections
// does not fill detection.classes.
static int dn_classes(network *net) { return net->layers[net->n - 1].classes; }
static void dn_flush(void) { fflush(stdout); fflush(stderr); }
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// libdarknet keeps global state (its random generator, OpenMP pools) and is not meant
// for concurrent use; every call goes through this lock.
var mu sync.Mutex

// Net is a network loaded by libdarknet with batch 1.
type Net struct {
	p *C.network
}

// Load loads a cfg and, unless weights is "", its weights (else darknet's random
// initialisation), and sets the batch to 1.
func Load(cfg, weights string) (*Net, error) {
	// darknet exits the process when it cannot open a file; check first.
	for _, p := range []string{cfg, weights} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("darknet load: %w", err)
		}
	}
	ccfg := C.CString(cfg)
	defer C.free(unsafe.Pointer(ccfg))
	var cweights *C.char
	if weights != "" {
		cweights = C.CString(weights)
		defer C.free(unsafe.Pointer(cweights))
	}
	mu.Lock()
	defer mu.Unlock()
	restore := silence()
	p := C.load_network(ccfg, cweights, 0)
	restore()
	if p == nil {
		return nil, errors.New("darknet load: load_network returned nothing")
	}
	C.set_batch_network(p, 1)
	n := &Net{p: p}
	runtime.SetFinalizer(n, (*Net).Close)
	return n, nil
}

// silence sends the process's stdout and stderr to /dev/null while darknet prints its
// layer table and warnings (set DARKNETREF_VERBOSE=1 to see them); the returned
// function flushes C's buffers and restores both.
func silence() (restore func()) {
	if os.Getenv("DARKNETREF_VERBOSE") != "" {
		return func() {}
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return func() {}
	}
	defer null.Close()
	var saved []int
	for _, fd := range []int{1, 2} {
		dup, err := syscall.Dup(fd)
		if err != nil {
			break
		}
		if err := syscall.Dup3(int(null.Fd()), fd, 0); err != nil {
			syscall.Close(dup)
			break
		}
		saved = append(saved, dup)
	}
	return func() {
		C.dn_flush()
		for i, dup := range saved {
			_ = syscall.Dup3(dup, i+1, 0)
			syscall.Close(dup)
		}
	}
}

// Close frees the network.
func (n *Net) Close() {
	if n.p == nil {
		return
	}
	mu.Lock()
	C.free_network(n.p)
	mu.Unlock()
	n.p = nil
}

// Input returns the network input size.
func (n *Net) Input() (w, h, c int) {
	return int(C.dn_w(n.p)), int(C.dn_h(n.p)), int(C.dn_c(n.p))
}

// Layers returns the number of layers.
func (n *Net) Layers() int { return int(C.dn_layers(n.p)) }

// Predict runs the network on one planar input of w*h*c floats (network_predict).
func (n *Net) Predict(input []float32) error {
	w, h, c := n.Input()
	if len(input) != w*h*c {
		return fmt.Errorf("darknet predict: input has %d values, network wants %dx%dx%d", len(input), c, h, w)
	}
	buf := (*C.float)(C.malloc(C.size_t(4 * len(input))))
	defer C.free(unsafe.Pointer(buf))
	copy(unsafe.Slice((*float32)(unsafe.Pointer(buf)), len(input)), input)
	mu.Lock()
	C.network_predict(n.p, buf)
	mu.Unlock()
	return nil
}

// Output returns a copy of layer i's output of the last Predict and its shape (CHW).
func (n *Net) Output(i int) (data []float32, c, h, w int, err error) {
	if i < 0 || i >= n.Layers() {
		return nil, 0, 0, 0, fmt.Errorf("darknet output: layer %d of %d", i, n.Layers())
	}
	var cn, cw, ch, cc C.int
	p := C.dn_output(n.p, C.int(i), &cn, &cw, &ch, &cc)
	if p == nil {
		return nil, 0, 0, 0, fmt.Errorf("darknet output: layer %d has no output buffer", i)
	}
	data = make([]float32, int(cn))
	copy(data, unsafe.Slice((*float32)(unsafe.Pointer(p)), int(cn)))
	return data, int(cc), int(ch), int(cw), nil
}

// Boxes runs darknet's get_network_boxes (relative coordinates, no hierarchy) for an
// origW x origH image and, when nms > 0, do_nms_sort; it returns the surviving
// candidates as boxes.Detection with corner boxes in pixels (unclipped), in darknet's
// final order. Pass them to boxes.Objects for darknet's printed list.
func (n *Net) Boxes(origW, origH int, thresh, nms float32) []boxes.Detection {
	mu.Lock()
	defer mu.Unlock()
	var num C.int
	dets := C.get_network_boxes(n.p, C.int(origW), C.int(origH), C.float(thresh), 0.5, nil, 1, &num)
	defer C.free_detections(dets, num)
	classes := C.dn_classes(n.p)
	if num > 0 && nms > 0 {
		C.do_nms_sort(dets, num, classes, C.float(nms))
	}
	var out []boxes.Detection
	for i := 0; i < int(num); i++ {
		d := C.dn_det(dets, C.int(i))
		if d.objectness == 0 {
			continue // do_nms_sort's ignored tail: everything below thresh
		}
		b := d.bbox
		x, y, w, h := float32(b.x), float32(b.y), float32(b.w), float32(b.h)
		fw, fh := float32(origW), float32(origH)
		det := boxes.Detection{
			Objectness: float32(d.objectness),
			Box:        [4]float32{(x - w/2) * fw, (y - h/2) * fh, (x + w/2) * fw, (y + h/2) * fh},
			Probs:      make([]float32, int(classes)),
		}
		copy(det.Probs, unsafe.Slice((*float32)(unsafe.Pointer(d.prob)), int(classes)))
		for j, p := range det.Probs {
			if p > det.Score {
				det.Class, det.Score = j, p
			}
		}
		out = append(out, det)
	}
	return out
}

// fromC copies a darknet image into Go memory.
func fromC(im C.image) *imageio.Image {
	w, h, c := int(im.w), int(im.h), int(im.c)
	out := imageio.NewImage(w, h, c)
	copy(out.Data, unsafe.Slice((*float32)(unsafe.Pointer(im.data)), w*h*c))
	return out
}

// toC copies an image into a new darknet image (free with free_image).
func toC(im *imageio.Image) C.image {
	out := C.make_image(C.int(im.W), C.int(im.H), C.int(im.C))
	copy(unsafe.Slice((*float32)(unsafe.Pointer(out.data)), len(im.Data)), im.Data)
	return out
}

// LoadImageColor loads an image as darknet does (load_image_color: OpenCV's imread in
// Debian's build, 3 channels, byte/255).
func LoadImageColor(path string) (*imageio.Image, error) {
	// darknet answers an unreadable file with a 10x10 image and appends to ./bad.list.
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("darknet load image: %w", err)
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	mu.Lock()
	defer mu.Unlock()
	im := C.load_image_color(cpath, 0, 0)
	defer C.free_image(im)
	return fromC(im), nil
}

// Letterbox runs darknet's letterbox_image on an image.
func Letterbox(im *imageio.Image, w, h int) *imageio.Image {
	mu.Lock()
	defer mu.Unlock()
	src := toC(im)
	defer C.free_image(src)
	out := C.letterbox_image(src, C.int(w), C.int(h))
	defer C.free_image(out)
	return fromC(out)
}

// Resize runs darknet's resize_image on an image.
func Resize(im *imageio.Image, w, h int) *imageio.Image {
	mu.Lock()
	defer mu.Unlock()
	src := toC(im)
	defer C.free_image(src)
	out := C.resize_image(src, C.int(w), C.int(h))
	defer C.free_image(out)
	return fromC(out)
}
