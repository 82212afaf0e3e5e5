package imageio

import "sync"

// Resize scales an image to w x h the way darknet's resize_image does: bilinear in two
// passes (columns first into an intermediate image of the source height, then rows),
// with sample positions c*(srcW-1)/(w-1) so that the corner samples map onto each other,
// all in float32. The float32 conversions below stop the compiler from fusing
// multiply-adds, which would change the last bit compared with darknet's C.
func Resize(im *Image, w, h int) *Image {
	out := NewImage(w, h, im.C)
	resizeInto(out.Data, w, w*h, im, w, h)
	return out
}

// resizeInto is Resize writing plane k's row r at dst[k*plane+r*stride:]: into a
// letterbox canvas directly. The column pass's intermediate comes from a pool (a frame's
// resize would otherwise allocate megabytes for the garbage collector).
func resizeInto(dst []float32, stride, plane int, im *Image, w, h int) {
	n := w * im.H * im.C
	buf, _ := resizeParts.Get().(*[]float32)
	if buf == nil || cap(*buf) < n {
		buf = new([]float32)
		*buf = make([]float32, n)
	}
	defer resizeParts.Put(buf)
	part := &Image{W: w, H: im.H, C: im.C, Data: (*buf)[:n]}
	wScale := float32(im.W-1) / float32(w-1)
	hScale := float32(im.H-1) / float32(h-1)
	// Each column's source and weights, once for all rows and channels (the same
	// float32 values the per-pixel formula gives).
	ixs, dxs, rxs := make([]int32, w), make([]float32, w), make([]float32, w)
	for c := 0; c < w; c++ {
		if c == w-1 || im.W == 1 {
			ixs[c] = -1 // the last source column as it is
			continue
		}
		sx := float32(c) * wScale
		ixs[c] = int32(sx)
		dxs[c] = sx - float32(ixs[c])
		rxs[c] = 1 - dxs[c]
	}
	// Columns 0..w-2 interpolate (the last copies): four at a time on NEON.
	vec := 0
	if haveNEON && im.W > 1 {
		vec = (w - 1) &^ 3
	}
	for k := 0; k < im.C; k++ {
		for r := 0; r < im.H; r++ {
			src := im.Data[(k*im.H+r)*im.W : (k*im.H+r+1)*im.W]
			dst := part.Data[(k*im.H+r)*w : (k*im.H+r+1)*w]
			if vec > 0 {
				lerpColsNEON(&dst[0], &src[0], &ixs[0], &rxs[0], &dxs[0], vec)
			}
			for c := vec; c < len(dst); c++ {
				ix := int(ixs[c])
				if ix < 0 {
					dst[c] = src[im.W-1]
					continue
				}
				pair := src[ix : ix+2 : ix+2]
				dst[c] = float32(rxs[c]*pair[0]) + float32(dxs[c]*pair[1])
			}
		}
	}
	for k := 0; k < im.C; k++ {
		for r := 0; r < h; r++ {
			sy := float32(0)
			if h > 1 { // darknet divides by h-1; a one-row target samples the top row
				sy = float32(r) * hScale
			}
			iy := int(sy)
			dy := sy - float32(iy)
			dst := dst[k*plane+r*stride : k*plane+r*stride+w]
			top := part.Data[(k*im.H+iy)*w : (k*im.H+iy+1)*w]
			if r == h-1 || im.H == 1 {
				for c := range dst {
					dst[c] = (1 - dy) * top[c]
				}
				continue
			}
			blendRows(dst, top, part.Data[(k*im.H+iy+1)*w:(k*im.H+iy+2)*w], 1-dy, dy)
		}
	}
}

// resizeParts holds column-pass intermediates for reuse.
var resizeParts sync.Pool

// LetterboxGeometry returns the size of the resized image inside a w x h letterbox and
// its top-left offset, with darknet's integer arithmetic (letterbox_image): the side
// that limits the scale is filled exactly, the other is truncated.
func LetterboxGeometry(srcW, srcH, w, h int) (newW, newH, dx, dy int) {
	if float32(w)/float32(srcW) < float32(h)/float32(srcH) {
		newW, newH = w, srcH*w/srcW
	} else {
		newW, newH = srcW*h/srcH, h
	}
	return newW, newH, (w - newW) / 2, (h - newH) / 2
}

// Letterbox resizes an image to fit w x h keeping its aspect ratio and centres it on a
// canvas of 0.5 (darknet's letterbox_image).
func Letterbox(im *Image, w, h int) *Image {
	newW, newH, dx, dy := LetterboxGeometry(im.W, im.H, w, h)
	out := NewImage(w, h, im.C)
	for k := 0; k < im.C; k++ {
		plane := out.Data[k*h*w : (k+1)*h*w]
		fill(plane[:dy*w], 0.5) // the bands above and below, and the margins beside
		fill(plane[(dy+newH)*w:], 0.5)
		for y := 0; y < newH; y++ {
			row := plane[(y+dy)*w : (y+dy+1)*w]
			fill(row[:dx], 0.5)
			fill(row[dx+newW:], 0.5)
		}
	}
	resizeInto(out.Data[dy*w+dx:], w, w*h, im, newW, newH) // the picture, straight into the canvas
	return out
}

// blendRows sets dst[i] = a*top[i] + b*bottom[i], each product rounded to float32 before
// the add (darknet's vertical resize pass); NEON on the board, four at a time.
func blendRows(dst, top, bottom []float32, a, b float32) {
	i := 0
	if n := len(dst) &^ 3; haveNEON && n > 0 {
		blendRowsNEON(&dst[0], &top[0], &bottom[0], n, a, b)
		i = n
	}
	top, bottom = top[:len(dst)], bottom[:len(dst)]
	for ; i < len(dst); i++ {
		dst[i] = float32(a*top[i]) + float32(b*bottom[i])
	}
}

func fill(s []float32, v float32) {
	for i := range s {
		s[i] = v
	}
}
