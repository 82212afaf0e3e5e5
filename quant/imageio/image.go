// Package imageio owns the image side of the darknet-compatible pipeline: decoding JPEG
// and PNG into darknet's planar float image exactly as darknet sees it, in either of
// darknet's two ways (see [Decoder]: libjpeg-turbo as OpenCV builds such as Debian's
// use, or stb_image as the default OPENCV=0 build and QNN-MO-PYNQ use), darknet's
// bilinear resize and letterbox, and drawing detection boxes for annotated output.
package imageio

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // registered so Decode accepts what users feed a webcam tool
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
	"sync/atomic"

	"github.com/fpgadetector/pynq-agent/internal/unsupported"
)

// Image is darknet's image: planar (CHW) float32 samples in [0,1].
type Image struct {
	W, H, C int
	Data    []float32 // C planes of H rows of W values
}

// NewImage returns a zeroed image.
func NewImage(w, h, c int) *Image {
	return &Image{W: w, H: h, C: c, Data: make([]float32, w*h*c)}
}

// At returns sample (x, y) of channel c.
func (im *Image) At(x, y, c int) float32 { return im.Data[(c*im.H+y)*im.W+x] }

// Set stores sample (x, y) of channel c.
func (im *Image) Set(x, y, c int, v float32) { im.Data[(c*im.H+y)*im.W+x] = v }

// Fill sets every sample to v.
func (im *Image) Fill(v float32) {
	for i := range im.Data {
		im.Data[i] = v
	}
}

// ErrUnsupported is wrapped when an image has a layout this package cannot read.
var ErrUnsupported error = unsupported.Error("unsupported image")

// DefaultMaxPixels bounds decoded images so that a hostile header cannot exhaust a
// host's memory: 33.5 megapixels, a photo, not a memory bomb. Decoding costs about 20
// bytes per pixel at its peak (compressed data, decoded samples, RGBA, float planes).
const DefaultMaxPixels = 1 << 25

// maxPixels is the limit in force (SetMaxPixels).
var maxPixels atomic.Int64

func init() { maxPixels.Store(DefaultMaxPixels) }

// SetMaxPixels sets the largest image (width x height) any decoder of this package
// accepts, checked from the header before any large allocation, and returns the
// previous limit. A board with 512 MB sets it far below the default (the agent's
// limits.max_image_pixels).
func SetMaxPixels(n int64) (previous int64) { return maxPixels.Swap(max(n, 1)) }

// MaxPixels is the limit in force.
func MaxPixels() int64 { return maxPixels.Load() }

// ErrTooLarge is wrapped when an image has more pixels than MaxPixels.
var ErrTooLarge = errors.New("image too large")

// tooBig says whether w x h exceeds the limit, without overflowing a 32-bit int.
func tooBig(w, h int) bool { return int64(w)*int64(h) > maxPixels.Load() }

// tooBigErr is the error for a w x h image over the limit.
func tooBigErr(w, h int) error {
	return fmt.Errorf("image is %dx%d (%.1f megapixels), more than the %.1f megapixels allowed: %w",
		w, h, float64(w)*float64(h)/1e6, float64(maxPixels.Load())/1e6, ErrTooLarge)
}

// Load reads a JPEG or PNG file as a 3-channel image (darknet's load_image_color),
// decoded like [LibJPEG]; see [Decode] and [LoadWith].
func Load(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load image: %w", err)
	}
	defer f.Close()
	im, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("load image %s: %w", path, err)
	}
	return im, nil
}

// Decode reads a JPEG or PNG stream as a 3-channel RGB image with values byte/255,
// decoding like [LibJPEG]. That stays the default because the toolchain's reference
// executor is Debian's darknet, an OpenCV build, and darknet models are compared with
// it; QNN-MO models, whose published results came from stb_image, decode with
// DecodeWith(r, STB) (qnnmo.ImageDecoder).
// Sequential JPEGs are decoded bit-exactly as libjpeg(-turbo) does by default (islow
// IDCT, fancy chroma upsampling, fixed-point YCbCr->RGB), so the samples equal those of
// darknet builds that load images through OpenCV or libjpeg; progressive and other JPEGs
// go through image/jpeg with the same upsampling and colour conversion (within a few
// levels).
func Decode(r io.Reader) (*Image, error) {
	rgb, err := DecodeRGBA(r)
	if err != nil {
		return nil, err
	}
	return FromRGBA(rgb), nil
}

// DecodeRGBA decodes like [Decode] but returns 8-bit RGBA pixels (alpha 255), for
// drawing and re-encoding.
func DecodeRGBA(r io.Reader) (*image.RGBA, error) {
	data, err := readImage(r)
	if err != nil {
		return nil, err
	}
	// Sequential JPEGs go through our decoder, whose inverse DCT is libjpeg's; anything
	// it does not handle, or finds corrupt, goes to the standard decoders.
	if src, err := decodeJPEG(data); err == nil {
		return ToRGBA(src)
	}
	src, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode image: %w", err)
	}
	return ToRGBA(src)
}

// readImage reads a whole image stream and checks its header first, so that a forged
// size cannot make a decoder allocate gigabytes.
func readImage(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode image header: %w (want JPEG or PNG)", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("image is %dx%d: %w", cfg.Width, cfg.Height, ErrUnsupported)
	}
	if tooBig(cfg.Width, cfg.Height) {
		return nil, tooBigErr(cfg.Width, cfg.Height)
	}
	return data, nil
}

// ToRGBA converts any decoded image to 8-bit RGBA the way libjpeg/OpenCV would present
// it: YCbCr through fancy upsampling and libjpeg's colour tables, grey replicated,
// alpha dropped (OpenCV's IMREAD_COLOR ignores it), 16-bit samples truncated to 8.
func ToRGBA(src image.Image) (*image.RGBA, error) {
	b := src.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return nil, fmt.Errorf("image is %dx%d: %w", b.Dx(), b.Dy(), ErrUnsupported)
	}
	if tooBig(b.Dx(), b.Dy()) {
		return nil, tooBigErr(b.Dx(), b.Dy())
	}
	if y, ok := src.(*image.YCbCr); ok {
		if out, ok := yccToRGBA(y); ok {
			return out, nil
		}
	}
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			r, g, bl := sample8(src, b.Min.X+x, b.Min.Y+y)
			o := out.PixOffset(x, y)
			out.Pix[o], out.Pix[o+1], out.Pix[o+2], out.Pix[o+3] = r, g, bl, 255
		}
	}
	return out, nil
}

// sample8 returns the 8-bit RGB of one pixel, un-premultiplied where the image stores
// alpha, because OpenCV drops alpha rather than compositing.
func sample8(src image.Image, x, y int) (r, g, b uint8) {
	switch s := src.(type) {
	case *image.Gray:
		v := s.GrayAt(x, y).Y
		return v, v, v
	case *image.NRGBA:
		c := s.NRGBAAt(x, y)
		return c.R, c.G, c.B
	case *image.NRGBA64:
		c := s.NRGBA64At(x, y)
		return uint8(c.R >> 8), uint8(c.G >> 8), uint8(c.B >> 8)
	}
	c := color.NRGBA64Model.Convert(src.At(x, y)).(color.NRGBA64)
	return uint8(c.R >> 8), uint8(c.G >> 8), uint8(c.B >> 8)
}

// FromRGBA converts 8-bit pixels to a planar 3-channel float image (byte/255).
func FromRGBA(src *image.RGBA) *Image {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	im := NewImage(w, h, 3)
	plane := w * h
	r, g, bl := im.Data[:plane], im.Data[plane:2*plane], im.Data[2*plane:3*plane]
	for y := 0; y < h; y++ {
		row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
		row = row[:4*w]
		x := 0
		if k := w / 8; haveNEON && k > 0 {
			rgbaPlanarNEON(&r[y*w], &g[y*w], &bl[y*w], &row[0], k)
			x = 8 * k
		}
		for ; x < w; x++ {
			px := row[4*x : 4*x+3 : 4*x+3]
			i := y*w + x
			r[i], g[i], bl[i] = byteUnit[px[0]], byteUnit[px[1]], byteUnit[px[2]]
		}
	}
	return im
}

// byteUnit[b] is float32(b) / 255, looked up instead of divided for every pixel.
var byteUnit = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i) / 255
	}
	return t
}()

// ToRGBA converts a 1- or 3-channel float image back to 8-bit pixels (clamped,
// rounded), for drawing a letterboxed or resized image.
func (im *Image) ToRGBA() *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, im.W, im.H))
	plane := im.W * im.H
	for i := 0; i < plane; i++ {
		for c := 0; c < 3; c++ {
			ch := c
			if im.C < 3 {
				ch = 0
			}
			out.Pix[4*i+c] = to8(im.Data[ch*plane+i])
		}
		out.Pix[4*i+3] = 255
	}
	return out
}

func to8(v float32) uint8 {
	switch {
	case !(v > 0): // also NaN
		return 0
	case v >= 1:
		return 255
	}
	return uint8(v*255 + 0.5)
}
