package agent

import (
	"fmt"
	"image"
	"image/color"
	"sync"

	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// YUYVFrame is a raw YUYV 4:2:2 frame as a UVC camera delivers it (Y0 U Y1 V per pixel
// pair, BT.601 limited range). The pipeline makes the network's planar image from it and
// hands the frame itself to the feed as an image.Image: its JPEG encoder asks for the
// YCbCr planes (YCbCr422), made only when a viewer needs them, and a pixel's colour
// (At, for thumbnails) is the same conversion as the network's.
type YUYVFrame struct {
	Data         []byte
	W, H, Stride int // pixels, and bytes per line (>= 2*W)

	ycc    sync.Once
	yccImg *image.YCbCr
	yccErr error
}

var _ image.Image = (*YUYVFrame)(nil)

func (f *YUYVFrame) ColorModel() color.Model { return color.RGBAModel }
func (f *YUYVFrame) Bounds() image.Rectangle { return image.Rect(0, 0, f.W, f.H) }

// At converts one pixel (BT.601 limited range, the tables of the planar image).
func (f *YUYVFrame) At(x, y int) color.Color {
	if x < 0 || y < 0 || x >= f.W || y >= f.H || f.check() != nil {
		return color.RGBA{}
	}
	q := f.Data[y*f.Stride+4*(x/2):]
	t := &yuvTab
	c := t.c[q[2*(x%2)]]
	return color.RGBA{t.clip[(c+t.rv[q[3]])>>16&2047], t.clip[(c+t.gu[q[1]]+t.gv[q[3]])>>16&2047], t.clip[(c+t.bu[q[1]])>>16&2047], 255}
}

// YCbCr422 is the frame's planes for a JPEG encoder (web/jpegenc), made on first use.
func (f *YUYVFrame) YCbCr422() *image.YCbCr {
	f.ycc.Do(func() { f.yccImg, f.yccErr = f.YCbCr() })
	if f.yccErr != nil {
		return image.NewYCbCr(f.Bounds(), image.YCbCrSubsampleRatio422)
	}
	return f.yccImg
}

func (f *YUYVFrame) check() error {
	if f.W <= 0 || f.H <= 0 || f.W%2 != 0 || f.Stride < 2*f.W || len(f.Data) < f.Stride*(f.H-1)+2*f.W {
		return fmt.Errorf("yuyv frame: %d bytes for %dx%d (stride %d)", len(f.Data), f.W, f.H, f.Stride)
	}
	return nil
}

// Planar is the frame as the network's planar image: exactly FromRGBA(yuyvToRGBA(f)),
// in one pass.
func (f *YUYVFrame) Planar() (*imageio.Image, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	w, h := f.W, f.H
	im := imageio.NewImage(w, h, 3)
	plane := w * h
	r, g, b := im.Data[:plane], im.Data[plane:2*plane], im.Data[2*plane:3*plane]
	t := &yuvTab
	for y := 0; y < h; y++ {
		row := f.Data[y*f.Stride : y*f.Stride+2*w]
		o := y * w
		rr, gg, bb := r[o:o+w], g[o:o+w], b[o:o+w]
		x := 0
		if n := w / 16; haveNEON && n > 0 {
			yuyvPlanarNEON(&rr[0], &gg[0], &bb[0], &row[0], n)
			x = 16 * n
		}
		for ; x+2 <= w; x += 2 {
			q := row[2*x : 2*x+4 : 2*x+4]
			u, v := q[1], q[3]
			rv, guv, bu := t.rv[v], t.gu[u]+t.gv[v], t.bu[u]
			c0, c1 := t.c[q[0]], t.c[q[2]]
			rp, gp, bp := rr[x:x+2:x+2], gg[x:x+2:x+2], bb[x:x+2:x+2]
			rp[0], rp[1] = t.unit[(c0+rv)>>16&2047], t.unit[(c1+rv)>>16&2047]
			gp[0], gp[1] = t.unit[(c0+guv)>>16&2047], t.unit[(c1+guv)>>16&2047]
			bp[0], bp[1] = t.unit[(c0+bu)>>16&2047], t.unit[(c1+bu)>>16&2047]
		}
	}
	return im, nil
}

// YCbCr is the frame for the feed: 4:2:2 planes in JPEG's full range (the camera's
// limited range stretched), which image/jpeg encodes without a colour conversion.
func (f *YUYVFrame) YCbCr() (*image.YCbCr, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	img := image.NewYCbCr(image.Rect(0, 0, f.W, f.H), image.YCbCrSubsampleRatio422)
	t := &yuvTab
	for y := 0; y < f.H; y++ {
		row := f.Data[y*f.Stride : y*f.Stride+2*f.W]
		yy := img.Y[y*img.YStride : y*img.YStride+f.W]
		cb := img.Cb[y*img.CStride : y*img.CStride+f.W/2]
		cr := img.Cr[y*img.CStride : y*img.CStride+f.W/2]
		i := 0
		if n := f.W / 16; haveNEON && n > 0 {
			yuyvYCbCrNEON(&yy[0], &cb[0], &cr[0], &row[0], n)
			i = 8 * n
		}
		for ; i < len(cb); i++ {
			q := row[4*i : 4*i+4 : 4*i+4]
			yy[2*i], cb[i], yy[2*i+1], cr[i] = t.fullY[q[0]], t.fullC[q[1]], t.fullY[q[2]], t.fullC[q[3]]
		}
	}
	return img, nil
}
