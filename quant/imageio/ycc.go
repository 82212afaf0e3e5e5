package imageio

import "image"

// libjpeg's YCbCr->RGB conversion (jdcolor.c) works in 16-bit fixed point with
// tables; reproducing it, rather than using image/color's own rounding, keeps every
// converted sample equal to what OpenCV/libjpeg hand to darknet.
const (
	yccScaleBits = 16
	yccOneHalf   = 1 << (yccScaleBits - 1)
)

func yccFix(x float64) int { return int(x*(1<<yccScaleBits) + 0.5) }

var yccCrR, yccCbB, yccCrG, yccCbG [256]int

func init() {
	for i := 0; i < 256; i++ {
		x := i - 128
		yccCrR[i] = (yccFix(1.40200)*x + yccOneHalf) >> yccScaleBits
		yccCbB[i] = (yccFix(1.77200)*x + yccOneHalf) >> yccScaleBits
		yccCrG[i] = -yccFix(0.71414) * x
		yccCbG[i] = -yccFix(0.34414)*x + yccOneHalf
	}
}

func clamp8(v int) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// yccToRGBA converts a decoded YCbCr image. ok is false for layouts it does not know,
// and the caller falls back to image.Image.At.
func yccToRGBA(src *image.YCbCr) (out *image.RGBA, ok bool) {
	b := src.Bounds()
	if b.Min != (image.Point{}) {
		return nil, false // sub-images: not produced by the decoders
	}
	w, h := b.Dx(), b.Dy()
	cb, okb := upsampleChroma(src, src.Cb, w, h)
	cr, okr := upsampleChroma(src, src.Cr, w, h)
	if !okb || !okr {
		return nil, false
	}
	out = image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		yrow := src.Y[y*src.YStride:]
		o := out.Pix[y*out.Stride:]
		for x := 0; x < w; x++ {
			yy := int(yrow[x])
			cbv, crv := cb[y*w+x], cr[y*w+x]
			o[4*x] = clamp8(yy + yccCrR[crv])
			o[4*x+1] = clamp8(yy + (yccCbG[cbv]+yccCrG[crv])>>yccScaleBits)
			o[4*x+2] = clamp8(yy + yccCbB[cbv])
			o[4*x+3] = 255
		}
	}
	return out, true
}

// subsamplings are the chroma subsamplings image.YCbCr supports, with the luma samples
// per chroma sample across (h) and down (v).
var subsamplings = []struct {
	ratio image.YCbCrSubsampleRatio
	h, v  int
}{
	{image.YCbCrSubsampleRatio444, 1, 1},
	{image.YCbCrSubsampleRatio422, 2, 1},
	{image.YCbCrSubsampleRatio420, 2, 2},
	{image.YCbCrSubsampleRatio440, 1, 2},
	{image.YCbCrSubsampleRatio411, 4, 1},
	{image.YCbCrSubsampleRatio410, 4, 2},
}

// chromaFactors is the subsampling of ratio; ok is false for a ratio image.YCbCr does
// not define.
func chromaFactors(ratio image.YCbCrSubsampleRatio) (h, v int, ok bool) {
	for _, s := range subsamplings {
		if s.ratio == ratio {
			return s.h, s.v, true
		}
	}
	return 0, 0, false
}

// subsampleRatio is the ratio with h by v luma samples per chroma sample, if image.YCbCr
// has one.
func subsampleRatio(h, v int) (image.YCbCrSubsampleRatio, bool) {
	for _, s := range subsamplings {
		if s.h == h && s.v == v {
			return s.ratio, true
		}
	}
	return 0, false
}

// upsampleChroma returns one chroma plane at full resolution (w*h samples), upsampled
// as libjpeg-turbo's jdsample.c does by default: a triangle ("fancy") filter for 2:1
// horizontal (h2v1), 2:1 both (h2v2) and 2:1 vertical (h1v2) when the plane is wide
// enough, plain replication otherwise.
func upsampleChroma(src *image.YCbCr, plane []byte, w, h int) ([]uint8, bool) {
	hf, vf, ok := chromaFactors(src.SubsampleRatio) // horizontal and vertical factors
	if !ok {
		return nil, false
	}
	cw, ch := (w+hf-1)/hf, (h+vf-1)/vf
	stride := src.CStride
	if len(plane) < (ch-1)*stride+cw {
		return nil, false
	}
	row := func(r int) []byte { return plane[r*stride : r*stride+cw] }
	out := make([]uint8, w*h)
	wide := make([]uint8, hf*cw) // one output row before cropping to w
	for y := 0; y < h; y++ {
		dst := out[y*w : (y+1)*w]
		switch {
		case hf == 2 && vf == 1 && cw > 2:
			fancyH2V1(wide, row(y))
		case hf == 2 && vf == 2 && cw > 2:
			near, far := verticalNeighbours(y, ch)
			fancyH2V2(wide, row(near), row(far))
		case hf == 1 && vf == 2:
			near, far := verticalNeighbours(y, ch)
			fancyH1V2(wide, row(near), row(far), y%2)
		default:
			replicate(wide, row(y/vf), hf)
		}
		copy(dst, wide[:w])
	}
	return out, true
}

// verticalNeighbours returns, for full-resolution row y of a 2:1 vertically subsampled
// plane with ch rows, the nearest chroma row and the next nearest (the row above for
// even y, below for odd y). libjpeg duplicates the first and last rows at the edges.
func verticalNeighbours(y, ch int) (near, far int) {
	near = y / 2
	if y%2 == 0 {
		far = max(near-1, 0)
	} else {
		far = min(near+1, ch-1)
	}
	return near, far
}

func replicate(dst, in []byte, hf int) {
	for i, v := range in {
		for k := 0; k < hf; k++ {
			dst[hf*i+k] = v
		}
	}
}

// fancyH2V1 weights the nearer chroma sample 3/4 and the other 1/4, with libjpeg's
// alternating rounding bias (1, 2) so that errors do not accumulate in one direction.
func fancyH2V1(dst, in []byte) {
	n := len(in)
	dst[0] = in[0]
	dst[1] = uint8((3*int(in[0]) + int(in[1]) + 2) >> 2)
	for i := 1; i < n-1; i++ {
		v := 3 * int(in[i])
		dst[2*i] = uint8((v + int(in[i-1]) + 1) >> 2)
		dst[2*i+1] = uint8((v + int(in[i+1]) + 2) >> 2)
	}
	last := n - 1
	dst[2*last] = uint8((3*int(in[last]) + int(in[last-1]) + 1) >> 2)
	dst[2*last+1] = in[last]
}

// fancyH2V2 first mixes the near and far rows 3:1 (column sums), then the columns 3:1,
// so each output weighs 9/16, 3/16, 3/16, 1/16; biases 8 and 7 alternate.
func fancyH2V2(dst, near, far []byte) {
	n := len(near)
	sum := func(i int) int { return 3*int(near[i]) + int(far[i]) }
	this, next := sum(0), sum(1)
	dst[0] = uint8((this*4 + 8) >> 4)
	dst[1] = uint8((this*3 + next + 7) >> 4)
	last := this
	this = next
	for i := 1; i < n-1; i++ {
		next = sum(i + 1)
		dst[2*i] = uint8((this*3 + last + 8) >> 4)
		dst[2*i+1] = uint8((this*3 + next + 7) >> 4)
		last, this = this, next
	}
	dst[2*(n-1)] = uint8((this*3 + last + 8) >> 4)
	dst[2*(n-1)+1] = uint8((this*4 + 7) >> 4)
}

// fancyH1V2 mixes the near and far rows 3:1 with bias 1 above and 2 below.
func fancyH1V2(dst, near, far []byte, odd int) {
	bias := 1 + odd
	for i := range near {
		dst[i] = uint8((3*int(near[i]) + int(far[i]) + bias) >> 2)
	}
}
