package synth

import "math"

// Surfaces of the room, in the order the ray caster reports them.
const (
	surfFloor = iota
	surfCeiling
	surfBack
	surfLeft
	surfRight
	surfFront
)

type floorKind uint8

const (
	floorPlanks floorKind = iota
	floorTiles
	floorCarpet
	floorPlain
)

type wallKind uint8

const (
	wallPaint wallKind = iota
	wallStripes
	wallWainscot
	wallTwoTone
)

// deco is a window, picture or door on a wall, in wall coordinates (u along the
// wall, y up).
type deco struct {
	wall           int
	u0, y0, u1, y1 float64
	kind           int // 0 window, 1 picture, 2 door
	frame, inner   rgb
}

// rug is a rectangle on the floor.
type rug struct {
	x0, z0, x1, z1 float64
	a, b           rgb
	stripes        bool
}

// room is a box-shaped room: floor y = 0, ceiling y = height, back wall z = depth,
// side walls x = x0 and x = x1, and a front wall behind the camera.
type room struct {
	x0, x1, depth, height float64
	floor                 floorKind
	floorA, floorB        rgb
	plankW, plankL, tile  float64
	plankAlongX           bool
	checker               bool
	wall                  wallKind
	wallA, wallB          rgb
	stripeW, wainH        float64
	baseH                 float64
	baseCol, ceil         rgb
	decos                 []deco
	rug                   *rug
	seed                  uint64
	// Lighting: one point light plus ambient.
	light   vec3
	power   float64
	ambient float64
	falloff float64 // distance (m) at which the light drops to half
}

func newRoom(r *rng) *room {
	rm := &room{seed: r.next()}
	rm.depth = math.Exp(r.rangef(math.Log(4.5), math.Log(16)))
	w := r.rangef(4, 12)
	shift := r.rangef(-0.35, 0.35) * w
	rm.x0, rm.x1 = -w/2+shift, w/2+shift
	rm.height = r.rangef(2.5, 3.6)

	rm.floor = floorKind(r.pick(4, 2, 2, 1.5))
	switch rm.floor {
	case floorPlanks:
		rm.floorA = woodColour(r)
		rm.floorB = rm.floorA.scale(r.rangef(0.8, 1.15))
		rm.plankW, rm.plankL = r.rangef(0.08, 0.22), r.rangef(0.8, 2.2)
		rm.plankAlongX = r.chance(0.3)
	case floorTiles:
		rm.floorA = hsv(r.float(), r.rangef(0, 0.3), r.rangef(0.35, 0.95))
		rm.floorB = hsv(r.float(), r.rangef(0, 0.3), r.rangef(0.1, 0.9))
		rm.checker = r.chance(0.3)
		if !rm.checker {
			rm.floorB = rm.floorA.scale(r.rangef(0.6, 0.9))
		}
		rm.tile = r.rangef(0.25, 0.7)
	case floorCarpet:
		rm.floorA = fabricColour(r)
		rm.floorB = rm.floorA.scale(0.7)
	default:
		rm.floorA = hsv(r.float(), r.rangef(0, 0.15), r.rangef(0.3, 0.8))
		rm.floorB = rm.floorA.scale(0.85)
	}

	rm.wall = wallKind(r.pick(4, 2, 2, 2))
	rm.wallA = hsv(r.float(), r.rangef(0, 0.35), r.rangef(0.45, 0.95))
	if r.chance(0.4) {
		rm.wallA = hsv(r.rangef(0.08, 0.16), r.rangef(0.05, 0.25), r.rangef(0.75, 0.95)) // off-white
	}
	rm.wallB = hsv(r.float(), r.rangef(0, 0.4), r.rangef(0.3, 0.9))
	if rm.wall == wallStripes {
		rm.wallB = rm.wallA.scale(r.rangef(0.75, 0.92))
	}
	rm.stripeW = r.rangef(0.04, 0.3)
	rm.wainH = r.rangef(0.7, 1.1)
	rm.baseH = r.rangef(0.05, 0.15)
	rm.baseCol = rm.wallA.scale(r.rangef(0.5, 1.1))
	if r.chance(0.5) {
		rm.baseCol = hsv(0, 0, 0.9)
	}
	rm.ceil = hsv(0.1, 0.05, r.rangef(0.8, 0.95))

	for range r.intn(5) {
		rm.addDeco(r)
	}
	if r.chance(0.35) {
		cx, cz := r.rangef(rm.x0+1, rm.x1-1), r.rangef(1.5, rm.depth-1)
		hw, hd := r.rangef(0.7, 2), r.rangef(0.6, 1.5)
		rm.rug = &rug{x0: cx - hw, x1: cx + hw, z0: cz - hd, z1: cz + hd,
			a: fabricColour(r), b: fabricColour(r), stripes: r.chance(0.5)}
	}

	rm.light = v3(r.rangef(rm.x0+0.5, rm.x1-0.5), rm.height-0.2, r.rangef(0.5, rm.depth))
	rm.power = r.rangef(0.5, 1.1)
	rm.ambient = r.rangef(0.35, 0.65)
	rm.falloff = r.rangef(2.5, 6)
	return rm
}

func (rm *room) addDeco(r *rng) {
	d := deco{kind: r.pick(3, 3, 1.5)}
	d.wall = r.pick(4, 1, 1) + surfBack
	lo, hi := rm.x0, rm.x1
	if d.wall != surfBack {
		lo, hi = 0.5, rm.depth
	}
	var w, h float64
	switch d.kind {
	case 0: // window
		w, h = r.rangef(0.6, 1.8), r.rangef(0.9, 1.6)
		d.y0 = r.rangef(0.6, 1.0)
		d.frame = hsv(0, 0, r.rangef(0.7, 0.95))
		d.inner = hsv(r.rangef(0.52, 0.62), r.rangef(0.1, 0.4), r.rangef(0.85, 1.1))
	case 1: // picture
		w, h = r.rangef(0.3, 1.2), r.rangef(0.25, 0.9)
		d.y0 = r.rangef(1.1, 1.6)
		d.frame = hsv(r.float(), r.rangef(0, 0.5), r.rangef(0.05, 0.7))
		d.inner = hsv(r.float(), r.rangef(0.1, 0.7), r.rangef(0.3, 0.9))
	default: // door
		w, h = r.rangef(0.8, 0.95), r.rangef(1.95, 2.1)
		d.frame = hsv(0, 0, r.rangef(0.8, 0.95))
		d.inner = woodColour(r)
		if r.chance(0.5) {
			d.inner = d.frame.scale(0.95)
		}
	}
	if hi-lo < w+0.2 {
		return
	}
	d.u0 = r.rangef(lo+0.1, hi-w-0.1)
	d.u1, d.y1 = d.u0+w, math.Min(d.y0+h, rm.height-0.1)
	rm.decos = append(rm.decos, d)
}

// hit casts a ray from the camera and returns the surface, the hit point and the
// distance travelled.
func (rm *room) hit(o, d vec3) (surf int, p vec3, t float64) {
	t = math.Inf(1)
	try := func(s int, tt float64) {
		if tt > 0 && tt < t {
			surf, t = s, tt
		}
	}
	if d.Y < 0 {
		try(surfFloor, -o.Y/d.Y)
	} else if d.Y > 0 {
		try(surfCeiling, (rm.height-o.Y)/d.Y)
	}
	if d.Z > 0 {
		try(surfBack, (rm.depth-o.Z)/d.Z)
	} else if d.Z < 0 {
		try(surfFront, (-3-o.Z)/d.Z)
	}
	if d.X < 0 {
		try(surfLeft, (rm.x0-o.X)/d.X)
	} else if d.X > 0 {
		try(surfRight, (rm.x1-o.X)/d.X)
	}
	return surf, o.add(d.scale(t)), t
}

func surfNormal(s int) vec3 {
	switch s {
	case surfFloor:
		return v3(0, 1, 0)
	case surfCeiling:
		return v3(0, -1, 0)
	case surfBack:
		return v3(0, 0, -1)
	case surfFront:
		return v3(0, 0, 1)
	case surfLeft:
		return v3(1, 0, 0)
	}
	return v3(-1, 0, 0)
}

// lineCover is how much of a pixel of size fp a line of width lw at distance dist
// covers: a box filter, so thin seams fade instead of aliasing in the distance.
func lineCover(dist, lw, fp float64) float64 {
	w := math.Max(lw, fp)
	if dist > w/2 {
		return 0
	}
	return lw / w
}

// edgeDist is the distance from u to the nearest multiple of period.
func edgeDist(u, period float64) float64 {
	f := u/period - math.Floor(u/period)
	return math.Min(f, 1-f) * period
}

// floorColour textures the floor at (x, z); fp is the pixel footprint in metres.
func (rm *room) floorColour(x, z, fp float64) rgb {
	if g := rm.rug; g != nil && x > g.x0 && x < g.x1 && z > g.z0 && z < g.z1 {
		c := g.a
		if g.stripes && int(math.Floor((x-g.x0)/0.25))%2 == 1 {
			c = g.b
		}
		if math.Min(math.Min(x-g.x0, g.x1-x), math.Min(z-g.z0, g.z1-z)) < 0.12 {
			c = g.b
		}
		return c.scale(0.85 + 0.3*fbm(x*25, z*25, rm.seed+7, 2, fp*25))
	}
	switch rm.floor {
	case floorPlanks:
		u, v := x, z
		if rm.plankAlongX {
			u, v = z, x
		}
		row := math.Floor(u / rm.plankW)
		off := hash2(int64(row), 0, rm.seed) * rm.plankL
		col := math.Floor((v + off) / rm.plankL)
		h := hash2(int64(row), int64(col), rm.seed+1)
		c := rm.floorA.lerp(rm.floorB, h).scale(0.85 + 0.25*hash2(int64(row), int64(col), rm.seed+2))
		grain := fbm(v*1.5, u*30, rm.seed+3, 3, fp*30)
		c = c.scale(0.8 + 0.4*grain)
		seam := math.Max(lineCover(edgeDist(u, rm.plankW), 0.004, fp), lineCover(edgeDist(v+off, rm.plankL), 0.004, fp))
		return c.scale(1 - 0.6*seam)
	case floorTiles:
		i, j := math.Floor(x/rm.tile), math.Floor(z/rm.tile)
		c := rm.floorA
		if rm.checker && int64(i+j)%2 != 0 {
			c = rm.floorB
		}
		c = c.scale(0.93 + 0.1*hash2(int64(i), int64(j), rm.seed) + 0.08*(fbm(x*4, z*4, rm.seed+4, 2, fp*4)-0.5))
		grout := math.Max(lineCover(edgeDist(x, rm.tile), 0.008, fp), lineCover(edgeDist(z, rm.tile), 0.008, fp))
		return c.lerp(rm.floorB.scale(0.6), grout*0.8)
	case floorCarpet:
		n := fbm(x*40, z*40, rm.seed+5, 3, fp*40)
		big := fbm(x*0.7, z*0.7, rm.seed+6, 2, fp)
		return rm.floorA.lerp(rm.floorB, big*0.6).scale(0.8 + 0.4*n)
	}
	return rm.floorA.lerp(rm.floorB, fbm(x*0.8, z*0.8, rm.seed+6, 3, fp)).scale(0.95 + 0.1*fbm(x*10, z*10, rm.seed+8, 2, fp*10))
}

// wallColour textures a wall at (u along it, y up).
func (rm *room) wallColour(s int, u, y, fp float64) rgb {
	for _, d := range rm.decos {
		if d.wall != s || u < d.u0 || u > d.u1 || y < d.y0 || y > d.y1 {
			continue
		}
		e := math.Min(math.Min(u-d.u0, d.u1-u), math.Min(y-d.y0, d.y1-y))
		switch d.kind {
		case 0:
			mu, my := (d.u0+d.u1)/2, (d.y0+d.y1)/2
			if e < 0.05 || math.Abs(u-mu) < 0.02 || math.Abs(y-my) < 0.02 {
				return d.frame
			}
			return d.inner.scale(0.9 + 0.2*(y-d.y0)/(d.y1-d.y0))
		case 1:
			if e < 0.04 {
				return d.frame
			}
			return d.inner.lerp(d.frame.lerp(rgb{1, 1, 1}, 0.5), fbm(u*3, y*3, rm.seed+9, 2, fp*3))
		default:
			if e < 0.06 {
				return d.frame
			}
			if math.Abs(u-(d.u1-0.1)) < 0.03 && math.Abs(y-1.0) < 0.02 {
				return hsv(0, 0, 0.6)
			}
			return d.inner
		}
	}
	if y < rm.baseH {
		return rm.baseCol
	}
	c := rm.wallA
	switch rm.wall {
	case wallStripes:
		if edgeDist(u+rm.stripeW/2, 2*rm.stripeW) < rm.stripeW/2 {
			c = rm.wallB
		}
	case wallWainscot:
		if y < rm.wainH {
			c = rm.wallB
			if rm.wainH-y < 0.04 {
				c = c.scale(0.8)
			}
		}
	case wallTwoTone:
		if s != surfBack {
			c = rm.wallB
		}
	}
	return c.scale(0.96 + 0.08*fbm(u*3, y*3, rm.seed+10, 3, fp*3))
}

// lightAt is the light falling on a surface with normal n at p (ambient + the point
// light with an inverse-square-like falloff).
func (rm *room) lightAt(p, n vec3) float64 {
	l := rm.light.sub(p)
	dist := l.len()
	cos := math.Max(0, n.dot(l)/dist)
	return rm.ambient + rm.power*cos/(1+(dist/rm.falloff)*(dist/rm.falloff))
}

// ao darkens corners where surfaces meet.
func (rm *room) ao(s int, p vec3) float64 {
	var d float64
	switch s {
	case surfFloor, surfCeiling:
		d = math.Min(math.Min(p.X-rm.x0, rm.x1-p.X), rm.depth-p.Z)
	default:
		d = math.Min(p.Y, rm.height-p.Y)
		if s == surfBack {
			d = math.Min(d, math.Min(p.X-rm.x0, rm.x1-p.X))
		} else {
			d = math.Min(d, rm.depth-p.Z)
		}
	}
	if d > 1.5 {
		return 1 // exp(-5) is below a grey level
	}
	return 1 - 0.3*math.Exp(-d/0.3)
}

// shadow is an object's contact shadow on the floor: an ellipse in the object's
// frame, shifted away from the light.
type shadow struct {
	cx, cz, sin, cos, ia, ib float64
}

func shadowsOf(objs []*object, light vec3) []shadow {
	out := make([]shadow, len(objs))
	for i, o := range objs {
		// The shadow leans away from the light, more for taller objects.
		away := v3(o.pos.X-light.X, 0, o.pos.Z-light.Z).norm().scale(0.12 * o.height)
		s, c := math.Sincos(o.yaw)
		out[i] = shadow{o.pos.X + away.X, o.pos.Z + away.Z, s, c, 1 / (o.halfW * o.halfW * 1.3), 1 / (o.halfD * o.halfD * 1.3)}
	}
	return out
}

// shadowAt is the light left by the furniture's soft shadows on the floor at (x, z).
func shadowAt(shadows []shadow, x, z float64) float64 {
	f := 1.0
	for _, sh := range shadows {
		dx, dz := x-sh.cx, z-sh.cz
		lx, lz := sh.cos*dx-sh.sin*dz, sh.sin*dx+sh.cos*dz
		if e := lx*lx*sh.ia + lz*lz*sh.ib; e < 1.3 {
			f *= 1 - 0.55*(1-smoothstep(0.2, 1.3, e))
		}
	}
	return f
}
