package synth

import (
	"image"
	"math"
	"sort"
)

// renderer holds one worker's buffers; reuse it across frames of the same size.
type renderer struct {
	c *canvas
}

func newRenderer(w, h int) *renderer { return &renderer{c: newCanvas(w, h)} }

// render draws the scene through cam and returns the frame and the boxes of the
// objects that opt labels.
func (rd *renderer) render(sc *scene, cam *camera, opt Options) (*image.RGBA, []Box) {
	c := rd.c
	clear(c.owner)
	sc.drawRoom(c, cam)
	order := depthOrder(sc.objs, cam)
	areas := make([]int, len(order))
	for i, o := range order {
		c.begin(int16(i + 1))
		sc.drawObject(c, o, cam)
		areas[i] = c.end()
	}
	img := sc.finish(c)
	return img, sc.boxes(c, cam, order, areas, opt)
}

// drawRoom ray-casts the floor, walls and ceiling for every pixel.
func (sc *scene) drawRoom(c *canvas, cam *camera) {
	rm := sc.room
	shadows := shadowsOf(sc.objs, rm.light)
	for py := 0; py < c.h; py++ {
		for px := 0; px < c.w; px++ {
			d := cam.ray(float64(px)+0.5, float64(py)+0.5)
			s, p, t := rm.hit(cam.pos, d)
			n := surfNormal(s)
			dl := d.len()
			fp := t * dl / cam.f / math.Max(0.1, math.Abs(n.dot(d))/dl)
			var col rgb
			switch s {
			case surfFloor:
				col = rm.floorColour(p.X, p.Z, fp).scale(shadowAt(shadows, p.X, p.Z))
			case surfCeiling:
				col = rm.ceil
			case surfBack:
				col = rm.wallColour(s, p.X, p.Y, fp)
			case surfFront:
				col = rm.wallColour(s, -p.X, p.Y, fp)
			default:
				col = rm.wallColour(s, p.Z, p.Y, fp)
			}
			c.set(py*c.w+px, col.scale(rm.lightAt(p, n)*rm.ao(s, p)))
		}
	}
}

// drawObject paints an object's solids far to near, each solid's front faces only.
func (sc *scene) drawObject(c *canvas, o *object, cam *camera) {
	type item struct {
		p    *prim
		dist float64
	}
	items := make([]item, len(o.prims))
	for i := range o.prims {
		items[i] = item{&o.prims[i], o.prims[i].centre().sub(cam.pos).len()}
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].dist > items[j].dist })
	for _, it := range items {
		sc.drawPrim(c, it.p, cam)
	}
}

func (sc *scene) drawPrim(c *canvas, p *prim, cam *camera) {
	rm := sc.room
	if p.faces == nil { // billboard
		x, y, z := cam.project(p.v[0])
		if z < 0.1 {
			return
		}
		rad := cam.f * p.radius / z
		col := p.surf.col.scale(rm.lightAt(p.v[0], rm.light.sub(p.v[0]).norm()))
		c.fillPoly(ellipsePoly(x, y, rad, rad*0.9, 0), sc.paint(p.surf, col, v3(0, 0, -1), cam.f/z, 1, 0))
		return
	}
	ctr := p.centre()
	pts := make([]pt, 0, 32)
	for fi, f := range p.faces {
		var fc vec3
		for _, i := range f {
			fc = fc.add(p.v[i])
		}
		fc = fc.scale(1 / float64(len(f)))
		n := p.v[f[1]].sub(p.v[f[0]]).cross(p.v[f[2]].sub(p.v[f[0]])).norm()
		if n.dot(fc.sub(ctr)) < 0 {
			n = n.scale(-1)
		}
		if n.dot(cam.pos.sub(fc)) <= 1e-9 {
			continue
		}
		pts = pts[:0]
		behind := false
		for _, i := range f {
			x, y, z := cam.project(p.v[i])
			if z < 0.05 {
				behind = true
				break
			}
			pts = append(pts, pt{x, y})
		}
		if behind {
			continue
		}
		// The grain runs along the face's longest screen edge.
		gx, gy, best := 1.0, 0.0, 0.0
		for k := range pts {
			q := pts[(k+1)%len(pts)]
			dx, dy := q.X-pts[k].X, q.Y-pts[k].Y
			if l := dx*dx + dy*dy; l > best {
				best, gx, gy = l, dx, dy
			}
		}
		if best > 0 {
			l := math.Sqrt(best)
			gx, gy = gx/l, gy/l
		}
		_, _, z := cam.project(fc)
		light := rm.lightAt(fc, n)
		col := p.surf.col
		if p.surf.mat == matBook {
			col = col.scale(0.8 + 0.4*hash2(int64(fi), 0, p.surf.seed))
		}
		// Faces near the floor see less of the room: a little ambient occlusion.
		shade := light * (1 - 0.25*math.Exp(-math.Max(fc.Y, 0)/0.12))
		if p.surf.mat == matGlow {
			shade = 1.1 + 0.2*n.Y
		}
		// Specular highlight for shiny materials.
		spec := 0.0
		if m := p.surf.mat; m == matMetal || m == matPlastic || m == matLeather {
			l := rm.light.sub(fc).norm()
			v := cam.pos.sub(fc).norm()
			hv := l.add(v).norm()
			k := 0.2
			switch m {
			case matMetal:
				k = 0.7
			case matPlastic:
				k = 0.3
			}
			spec = k * math.Pow(math.Max(0, n.dot(hv)), 12)
		}
		c.fillPoly(pts, sc.paint(p.surf, col.scale(shade).add(rgb{spec, spec, spec}), n, cam.f/z, gx, gy))
	}
}

// paint textures a face: wood grain along (gx, gy), fabric weave, leaf noise.
func (sc *scene) paint(s surface, col rgb, n vec3, ppm, gx, gy float64) painter {
	switch s.mat {
	case matWood:
		return func(x, y float64) rgb {
			along, across := (x*gx+y*gy)/ppm, (-x*gy+y*gx)/ppm
			g := fbm(along*2, across*45, s.seed, 3, 45/ppm)
			return col.scale(0.78 + 0.42*g)
		}
	case matFabric, matLeather:
		k := 0.25
		if s.mat == matLeather {
			k = 0.12
		}
		return func(x, y float64) rgb {
			return col.scale(1 - k/2 + k*fbm(x/ppm*25, y/ppm*25, s.seed, 2, 25/ppm))
		}
	case matFoliage:
		return func(x, y float64) rgb {
			return col.scale(0.6 + 0.8*fbm(x/ppm*12, y/ppm*12, s.seed, 3, 12/ppm))
		}
	case matMetal:
		return func(x, y float64) rgb {
			t := (x*gx + y*gy) / ppm
			return col.scale(0.9 + 0.2*math.Sin(t*6))
		}
	}
	return flat(col)
}

// finish applies the camera's look and converts to 8-bit RGBA.
func (sc *scene) finish(c *canvas) *image.RGBA {
	pp := sc.post
	img := image.NewRGBA(image.Rect(0, 0, c.w, c.h))
	src := c.pix
	if pp.blur {
		src = blur3(c.pix, c.w, c.h)
	}
	// The tone curve goes through a table: math.Pow per channel was half the frame time.
	const steps = 2048 // per unit of linear value; inputs clamp at 2
	var curve [2*steps + 1]float32
	for i := range curve {
		curve[i] = float32(math.Pow(float64(i)/steps, pp.gamma) * 255)
	}
	cx, cy := float64(c.w)/2, float64(c.h)/2
	r2 := cx*cx + cy*cy
	tint := [3]float64{pp.tint.R, pp.tint.G, pp.tint.B}
	for y := 0; y < c.h; y++ {
		for x := 0; x < c.w; x++ {
			i := y*c.w + x
			dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
			v := pp.gain * (1 - pp.vignette*(dx*dx+dy*dy)/r2)
			for k, t := range tint {
				val := float64(src[3*i+k]) * v * t
				j := int(clamp(val*steps, 0, 2*steps))
				out := float64(curve[j]) + pp.noise*255*(hash2(int64(i), int64(k), sc.postRNG)-0.5)*3.4
				img.Pix[4*i+k] = uint8(clamp(out+0.5, 0, 255))
			}
			img.Pix[4*i+3] = 255
		}
	}
	return img
}

// blur3 is a 3x3 binomial blur (defocus / a cheap lens).
func blur3(p []float32, w, h int) []float32 {
	tmp := make([]float32, len(p))
	out := make([]float32, len(p))
	at := func(x, lim int) int { return max(0, min(lim-1, x)) }
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for k := 0; k < 3; k++ {
				tmp[3*(y*w+x)+k] = (p[3*(y*w+at(x-1, w))+k] + 2*p[3*(y*w+x)+k] + p[3*(y*w+at(x+1, w))+k]) / 4
			}
		}
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for k := 0; k < 3; k++ {
				out[3*(y*w+x)+k] = (tmp[3*(at(y-1, h)*w+x)+k] + 2*tmp[3*(y*w+x)+k] + tmp[3*(at(y+1, h)*w+x)+k]) / 4
			}
		}
	}
	return out
}

// boxes measures each labelled object's visible pixels in the ownership buffer.
func (sc *scene) boxes(c *canvas, cam *camera, order []*object, areas []int, opt Options) []Box {
	type ext struct {
		x0, y0, x1, y1, n int
	}
	ex := make([]ext, len(order)+1)
	for i := range ex {
		ex[i] = ext{x0: c.w, y0: c.h, x1: -1, y1: -1}
	}
	for y := 0; y < c.h; y++ {
		for x := 0; x < c.w; x++ {
			id := c.owner[y*c.w+x]
			if id == 0 {
				continue
			}
			e := &ex[id]
			e.x0, e.y0 = min(e.x0, x), min(e.y0, y)
			e.x1, e.y1 = max(e.x1, x), max(e.y1, y)
			e.n++
		}
	}
	var out []Box
	for i, o := range order {
		if o.class != Chair && !opt.AllClasses {
			continue
		}
		e := ex[i+1]
		if e.n == 0 || areas[i] == 0 {
			continue
		}
		vis := float64(e.n) / float64(areas[i]) * inFrame(o, cam, c.w, c.h)
		b := Box{Class: o.class, Min: image.Pt(e.x0, e.y0), Max: image.Pt(e.x1+1, e.y1+1), Visible: vis, id: int16(i + 1)}
		if vis < opt.MinVisible || b.Max.X-b.Min.X < opt.MinSide || b.Max.Y-b.Min.Y < opt.MinSide {
			continue
		}
		out = append(out, b)
	}
	return out
}

// inFrame estimates the fraction of an object inside the frame from its projected
// bounding rectangle (the pixel counts cannot see what lies outside).
func inFrame(o *object, cam *camera, w, h int) float64 {
	x0, y0, x1, y1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, p := range o.prims {
		for _, v := range p.v {
			x, y, z := cam.project(v)
			if z < 0.05 {
				return 0.5 // partly behind the camera: certainly cut, by an unknown amount
			}
			r := cam.f * p.radius / z
			x0, y0 = math.Min(x0, x-r), math.Min(y0, y-r)
			x1, y1 = math.Max(x1, x+r), math.Max(y1, y+r)
		}
	}
	full := (x1 - x0) * (y1 - y0)
	if full <= 0 {
		return 0
	}
	iw := math.Min(x1, float64(w)) - math.Max(x0, 0)
	ih := math.Min(y1, float64(h)) - math.Max(y0, 0)
	if iw <= 0 || ih <= 0 {
		return 0
	}
	return iw * ih / full
}
