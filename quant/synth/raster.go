package synth

import (
	"image"
	"math"

	"golang.org/x/image/vector"
)

// pt is a screen point in pixels (x right, y down; pixel (i, j) covers [i, i+1) x [j, j+1)).
type pt struct{ X, Y float64 }

// painter gives the colour of a shape at a pixel centre.
type painter func(x, y float64) rgb

func flat(c rgb) painter { return func(float64, float64) rgb { return c } }

// canvas is the frame being rendered: colours, and for every pixel the object that
// owns it (0 = room). Ownership is what makes the boxes exact: an object owns a pixel
// when its shapes cover at least half of it, and a later (nearer) object that covers
// half of the pixel takes it over, so occluded parts drop out of the earlier object.
type canvas struct {
	w, h  int
	pix   []float32 // RGB per pixel
	owner []int16
	cov   []float32 // union coverage of the object being drawn
	dirty image.Rectangle
	cur   int16
	mask  *image.Alpha
	ras   vector.Rasterizer
}

func newCanvas(w, h int) *canvas {
	return &canvas{
		w: w, h: h,
		pix:   make([]float32, 3*w*h),
		owner: make([]int16, w*h),
		cov:   make([]float32, w*h),
		mask:  image.NewAlpha(image.Rect(0, 0, w, h)),
	}
}

func (c *canvas) set(i int, col rgb) {
	c.pix[3*i], c.pix[3*i+1], c.pix[3*i+2] = float32(col.R), float32(col.G), float32(col.B)
}

func (c *canvas) get(i int) rgb {
	return rgb{float64(c.pix[3*i]), float64(c.pix[3*i+1]), float64(c.pix[3*i+2])}
}

// begin starts drawing object id (> 0); shapes drawn until end belong to it.
func (c *canvas) begin(id int16) {
	c.cur = id
	c.dirty = image.Rectangle{}
}

// end gives the object the pixels its shapes cover at least half of and returns how
// many that is (its silhouette inside the frame before later occluders).
func (c *canvas) end() int {
	n := 0
	for y := c.dirty.Min.Y; y < c.dirty.Max.Y; y++ {
		for x := c.dirty.Min.X; x < c.dirty.Max.X; x++ {
			i := y*c.w + x
			if c.cov[i] >= 0.5 {
				c.owner[i] = c.cur
				n++
			}
			c.cov[i] = 0
		}
	}
	c.cur = 0
	return n
}

// fillPoly fills a polygon with anti-aliased edges.
func (c *canvas) fillPoly(p []pt, paint painter) { c.fillPolyAlpha(p, paint, 1) }

// fillPolyAlpha fills with an opacity; translucent fills (shadows, glass) never own pixels.
func (c *canvas) fillPolyAlpha(p []pt, paint painter, alpha float64) {
	if len(p) < 3 {
		return
	}
	minX, minY, maxX, maxY := p[0].X, p[0].Y, p[0].X, p[0].Y
	for _, q := range p[1:] {
		minX, maxX = math.Min(minX, q.X), math.Max(maxX, q.X)
		minY, maxY = math.Min(minY, q.Y), math.Max(maxY, q.Y)
	}
	r := image.Rect(int(math.Floor(minX)), int(math.Floor(minY)), int(math.Ceil(maxX)), int(math.Ceil(maxY))).
		Intersect(image.Rect(0, 0, c.w, c.h))
	if r.Empty() {
		return
	}
	bw, bh := r.Dx(), r.Dy()
	c.ras.Reset(bw, bh)
	ox, oy := float64(r.Min.X), float64(r.Min.Y)
	c.ras.MoveTo(float32(p[0].X-ox), float32(p[0].Y-oy))
	for _, q := range p[1:] {
		c.ras.LineTo(float32(q.X-ox), float32(q.Y-oy))
	}
	c.ras.ClosePath()
	m := &image.Alpha{Pix: c.mask.Pix[:bw*bh], Stride: bw, Rect: image.Rect(0, 0, bw, bh)}
	clear(m.Pix)
	c.ras.Draw(m, m.Rect, image.Opaque, image.Point{})
	owning := c.cur != 0 && alpha >= 1
	if owning {
		c.dirty = c.dirty.Union(r)
	}
	for y := 0; y < bh; y++ {
		row := m.Pix[y*bw : (y+1)*bw]
		py := r.Min.Y + y
		for x, a8 := range row {
			if a8 == 0 {
				continue
			}
			a := float64(a8) / 255
			px := r.Min.X + x
			i := py*c.w + px
			col := paint(float64(px)+0.5, float64(py)+0.5)
			t := float32(a * alpha)
			c.pix[3*i] += (float32(col.R) - c.pix[3*i]) * t
			c.pix[3*i+1] += (float32(col.G) - c.pix[3*i+1]) * t
			c.pix[3*i+2] += (float32(col.B) - c.pix[3*i+2]) * t
			if owning {
				c.cov[i] += float32(a) * (1 - c.cov[i])
			}
		}
	}
}

// ellipsePoly approximates an ellipse (centre, radii, rotation) by a polygon fine
// enough that the error stays under a tenth of a pixel.
func ellipsePoly(cx, cy, rx, ry, rot float64) []pt {
	n := int(math.Ceil(math.Pi / math.Acos(1-0.1/math.Max(math.Max(rx, ry), 0.2))))
	n = max(8, min(n, 128))
	s, co := math.Sincos(rot)
	p := make([]pt, n)
	for i := range p {
		a := 2 * math.Pi * float64(i) / float64(n)
		ex, ey := rx*math.Cos(a), ry*math.Sin(a)
		p[i] = pt{cx + ex*co - ey*s, cy + ex*s + ey*co}
	}
	return p
}
