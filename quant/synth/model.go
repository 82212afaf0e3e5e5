package synth

import "math"

// material selects how a surface is textured and lit.
type material uint8

const (
	matPaint material = iota
	matWood
	matFabric
	matMetal
	matPlastic
	matLeather
	matGlow    // lamp shades: lit from inside
	matFoliage // leaves: noisy greens
	matBook    // book spines: per-face random colour
)

type surface struct {
	col  rgb
	mat  material
	seed uint64
}

// prim is a convex solid (a box or a prism) given by its vertices and faces, or a
// billboard (a sphere drawn as a disc) when faces is nil.
type prim struct {
	v      []vec3
	faces  [][]int
	radius float64 // billboard radius in metres
	surf   surface
}

func (p *prim) centre() vec3 {
	var c vec3
	for _, v := range p.v {
		c = c.add(v)
	}
	return c.scale(1 / float64(len(p.v)))
}

// object is one piece of furniture: its solids in world space, its class and the
// floor footprint that casts its contact shadow.
type object struct {
	class  Class
	prims  []prim
	pos    vec3    // footprint centre on the floor
	yaw    float64 // turn about the vertical axis; 0 = front towards -z (the camera)
	halfW  float64 // footprint half width (local x) and half depth (local z)
	halfD  float64
	height float64
	local  []prim // the solids in object coordinates (for moving it)
}

// builder collects an object's solids in object-local coordinates: origin on the
// floor under the footprint centre, x right, y up, front towards -z.
type builder struct {
	prims []prim
	r     *rng
}

var boxFaces = [][]int{{0, 1, 3, 2}, {4, 6, 7, 5}, {0, 4, 5, 1}, {2, 3, 7, 6}, {0, 2, 6, 4}, {1, 5, 7, 3}}

// box adds a box centred at c with half extents h along the axes of rot.
func (b *builder) box(c, h vec3, rot mat3, s surface) {
	u := rot.mul(v3(h.X, 0, 0))
	v := rot.mul(v3(0, h.Y, 0))
	w := rot.mul(v3(0, 0, h.Z))
	vs := make([]vec3, 8)
	for i := range 8 {
		p := c
		p = p.add(u.scale(float64(2*(i>>2&1) - 1)))
		p = p.add(v.scale(float64(2*(i>>1&1) - 1)))
		p = p.add(w.scale(float64(2*(i&1) - 1)))
		vs[i] = p
	}
	b.prims = append(b.prims, prim{v: vs, faces: boxFaces, surf: s})
}

// slab adds an axis-aligned box from corner lo to corner hi.
func (b *builder) slab(lo, hi vec3, s surface) {
	b.box(lo.add(hi).scale(0.5), hi.sub(lo).scale(0.5), rotY(0), s)
}

// beam adds a box from point a to point c with cross-section w (sideways) by d.
func (b *builder) beam(a, c vec3, w, d float64, s surface) {
	ax := c.sub(a)
	l := ax.len()
	if l == 0 {
		return
	}
	dir := ax.scale(1 / l)
	ref := v3(1, 0, 0)
	if math.Abs(dir.X) > 0.9 {
		ref = v3(0, 0, 1)
	}
	e1 := ref.sub(dir.scale(dir.dot(ref))).norm()
	e2 := dir.cross(e1)
	rot := mat3{{e1.X, dir.X, e2.X}, {e1.Y, dir.Y, e2.Y}, {e1.Z, dir.Z, e2.Z}}
	b.box(a.lerp(c, 0.5), v3(w/2, l/2, d/2), rot, s)
}

// cyl adds an n-sided prism (a cylinder or a cone frustum) from a (radius r0) to c (r1).
func (b *builder) cyl(a, c vec3, r0, r1 float64, n int, s surface) {
	dir := c.sub(a).norm()
	ref := v3(1, 0, 0)
	if math.Abs(dir.X) > 0.9 {
		ref = v3(0, 0, 1)
	}
	e1 := ref.sub(dir.scale(dir.dot(ref))).norm()
	e2 := dir.cross(e1)
	vs := make([]vec3, 2*n)
	for i := range n {
		sn, cs := math.Sincos(2 * math.Pi * (float64(i) + 0.5) / float64(n))
		off := e1.scale(cs).add(e2.scale(sn))
		vs[i] = a.add(off.scale(r0))
		vs[n+i] = c.add(off.scale(r1))
	}
	faces := make([][]int, 0, n+2)
	bottom, top := make([]int, n), make([]int, n)
	for i := range n {
		j := (i + 1) % n
		faces = append(faces, []int{i, j, n + j, n + i})
		bottom[i], top[i] = i, n+i
	}
	faces = append(faces, bottom, top)
	b.prims = append(b.prims, prim{v: vs, faces: faces, surf: s})
}

// blob adds a billboard sphere (foliage, lamp globes).
func (b *builder) blob(c vec3, r float64, s surface) {
	b.prims = append(b.prims, prim{v: []vec3{c}, radius: r, surf: s})
}

// place moves the built solids into the world at pos turned by yaw.
func (b *builder) place(class Class, pos vec3, yaw, halfW, halfD float64) *object {
	o := &object{class: class, halfW: halfW, halfD: halfD, local: b.prims}
	o.prims = make([]prim, len(b.prims))
	for i, p := range b.prims {
		o.prims[i] = prim{v: make([]vec3, len(p.v)), faces: p.faces, radius: p.radius, surf: p.surf}
	}
	o.move(pos, yaw)
	return o
}

// move puts the object at pos turned by yaw.
func (o *object) move(pos vec3, yaw float64) {
	rot := rotY(yaw)
	o.pos, o.yaw, o.height = pos, yaw, 0
	for i, p := range o.local {
		for j, v := range p.v {
			o.prims[i].v[j] = rot.mul(v).add(pos)
			o.height = math.Max(o.height, o.prims[i].v[j].Y+p.radius)
		}
	}
}

// footRadius is the radius of a circle around the footprint (for spacing objects).
func (o *object) footRadius() float64 { return math.Hypot(o.halfW, o.halfD) }
