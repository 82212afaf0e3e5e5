package synth

import (
	"image"
	"math"
	"sort"
)

// Options tune what a scene contains and which objects get boxes.
type Options struct {
	// AllClasses boxes the distractor furniture too (classes in ClassNames order);
	// by default only chairs get boxes.
	AllClasses bool
	// MinVisible is the smallest visible fraction of an object that still gets a box
	// (default 0.25): less is hidden by nearer furniture or cut off by the frame.
	MinVisible float64
	// MinSide is the smallest box side in pixels (default 4).
	MinSide int
}

func (o Options) withDefaults() Options {
	if o.MinVisible == 0 {
		o.MinVisible = 0.25
	}
	if o.MinSide == 0 {
		o.MinSide = 4
	}
	return o
}

// Box is the tight pixel rectangle [Min, Max) of an object's visible pixels.
type Box struct {
	Class    Class
	Min, Max image.Point
	// Visible is the fraction of the object that is in view (not hidden by nearer
	// objects nor outside the frame), estimated from its pixel counts.
	Visible float64
	id      int16 // owner id in the canvas (tests)
}

// Darknet returns the box as a darknet label: centre and size normalized to w x h.
func (b Box) Darknet(w, h int) (cx, cy, bw, bh float64) {
	fw, fh := float64(w), float64(h)
	return float64(b.Min.X+b.Max.X) / 2 / fw, float64(b.Min.Y+b.Max.Y) / 2 / fh,
		float64(b.Max.X-b.Min.X) / fw, float64(b.Max.Y-b.Min.Y) / fh
}

// scene is a sampled room with furniture and a camera; rendering it is deterministic.
type scene struct {
	w, h    int
	room    *room
	objs    []*object
	camPos  vec3
	yaw     float64
	pitch   float64
	roll    float64
	f       float64
	post    post
	postRNG uint64
}

// post is the camera's look: exposure, white balance, vignette, noise, blur.
type post struct {
	gain     float64
	tint     rgb
	vignette float64
	gamma    float64
	noise    float64
	blur     bool
}

func newSceneDesc(seed int64, w, h int) *scene {
	r := newRNG(seed, 1)
	sc := &scene{w: w, h: h}
	sc.room = newRoom(r.fork())
	rm := sc.room
	cr := r.fork()
	hfov := cr.rangef(50, 85) * math.Pi / 180
	sc.f = float64(w) / 2 / math.Tan(hfov/2)
	sc.camPos = v3(cr.rangef(rm.x0+0.4, rm.x1-0.4), cr.rangef(0.7, 1.8), 0)
	sc.yaw = cr.rangef(-0.25, 0.25)
	sc.pitch = cr.rangef(0.03, 0.45)
	if cr.chance(0.5) {
		sc.roll = cr.rangef(-0.06, 0.06)
	}
	if sc.camPos.Y < 1 {
		sc.pitch *= 0.5
	}
	sc.post = post{
		gain:     cr.rangef(0.75, 1.25),
		vignette: cr.rangef(0, 0.45),
		gamma:    cr.rangef(0.85, 1.15),
		noise:    cr.rangef(0.004, 0.03),
		blur:     cr.chance(0.25),
	}
	temp := cr.rangef(-1, 1) // warm < 0 < cool
	sc.post.tint = rgb{1 - 0.1*temp, 1, 1 + 0.12*temp}
	sc.postRNG = cr.next()
	sc.furnish(r.fork())
	return sc
}

// frustumPoint returns the floor point at distance z along the camera's heading and
// at screen position u (-1 left edge, +1 right edge).
func (sc *scene) frustumPoint(z, u float64) vec3 {
	s, c := math.Sincos(sc.yaw)
	lat := u * z * float64(sc.w) / 2 / sc.f
	return v3(sc.camPos.X+s*z+c*lat, 0, sc.camPos.Z+c*z-s*lat)
}

// chairDepth picks a distance that makes a chair about frac of the image height.
func (sc *scene) chairDepth(frac float64) float64 {
	return sc.f * 0.85 / (frac * float64(sc.h))
}

// fits reports whether a footprint at p stays in the room and clear of the others.
func (sc *scene) fits(p vec3, rad float64, skip map[*object]bool) bool {
	rm := sc.room
	if p.X-rad < rm.x0 || p.X+rad > rm.x1 || p.Z-rad < 0.6 || p.Z+rad > rm.depth {
		return false
	}
	for _, o := range sc.objs {
		if skip[o] {
			continue
		}
		if math.Hypot(p.X-o.pos.X, p.Z-o.pos.Z) < 0.95*(rad+o.footRadius()) {
			return false
		}
	}
	return true
}

// facing is the yaw that turns an object's front towards the camera.
func (sc *scene) facing(p vec3) float64 {
	return math.Atan2(-(sc.camPos.X - p.X), -(sc.camPos.Z - p.Z))
}

// chairPose is the chair's turn relative to facing the camera: front, three-quarter,
// side or back views, plus anything in between.
func chairPose(r *rng) float64 {
	switch r.pick(3, 3, 2, 1, 2) {
	case 0:
		return r.rangef(-0.25, 0.25)
	case 1:
		return math.Copysign(r.rangef(0.5, 1.0), r.float()-0.5)
	case 2:
		return math.Copysign(r.rangef(1.3, 1.85), r.float()-0.5)
	case 3:
		return math.Pi + r.rangef(-0.4, 0.4)
	}
	return r.float() * 2 * math.Pi
}

func (sc *scene) build(r *rng, class Class) (*builder, float64, float64) {
	b := &builder{r: r.fork()}
	var hw, hd float64
	if class == Chair {
		hw, hd = b.chair()
	} else {
		hw, hd = b.distractor(class)
	}
	return b, hw, hd
}

// furnish places the furniture: sometimes a dining set (a table with chairs pushed
// in around it, which is where most occlusion comes from), free-standing chairs at
// depths that cover the size range, wall furniture and other distractors.
func (sc *scene) furnish(r *rng) {
	nChairs := r.pick(0.8, 3, 3, 2.5, 1.5, 1.2)
	nOther := 1 + r.intn(6)
	if nChairs >= 2 && r.chance(0.4) {
		nChairs -= sc.diningSet(r, min(nChairs, 4))
	}
	for range nChairs {
		if r.chance(0.15) && sc.chairByWall(r) {
			continue
		}
		frac := math.Exp(r.rangef(math.Log(0.05), math.Log(0.6)))
		for try := 0; try < 30; try++ {
			z := clamp(sc.chairDepth(frac)*r.rangef(0.85, 1.15), 0.9, sc.room.depth-0.5)
			p := sc.frustumPoint(z, r.rangef(-1.1, 1.1))
			b, hw, hd := sc.build(r, Chair)
			if !sc.fits(p, math.Hypot(hw, hd), nil) {
				continue
			}
			sc.objs = append(sc.objs, b.place(Chair, p, sc.facing(p)+chairPose(r), hw, hd))
			break
		}
	}
	for range nOther {
		kind := Class(1 + r.pick(3, 2.5, 1.5, 1.5, 1.5, 1.5, 1))
		for try := 0; try < 20; try++ {
			b, hw, hd := sc.build(r, kind)
			var p vec3
			var yaw float64
			if kind == Shelf || (kind == Cabinet || kind == Sofa) && r.chance(0.7) {
				p, yaw = sc.againstWall(r, hd)
			} else {
				z := math.Exp(r.rangef(math.Log(1.8), math.Log(math.Max(2, sc.room.depth-0.3))))
				p = sc.frustumPoint(z, r.rangef(-1.2, 1.2))
				yaw = r.float() * 2 * math.Pi
				if kind == Sofa {
					yaw = sc.facing(p) + r.rangef(-0.8, 0.8)
				}
			}
			if !sc.fits(p, math.Hypot(hw, hd), nil) {
				continue
			}
			sc.objs = append(sc.objs, b.place(kind, p, yaw, hw, hd))
			break
		}
	}
}

// chairByWall stands a chair with its back to a wall, facing into the room.
func (sc *scene) chairByWall(r *rng) bool {
	for try := 0; try < 10; try++ {
		b, hw, hd := sc.build(r, Chair)
		p, yaw := sc.againstWall(r, hd)
		if !sc.fits(p, math.Hypot(hw, hd), nil) {
			continue
		}
		sc.objs = append(sc.objs, b.place(Chair, p, yaw+r.rangef(-0.2, 0.2), hw, hd))
		return true
	}
	return false
}

// againstWall puts an object's back to the back wall or a side wall.
func (sc *scene) againstWall(r *rng, halfD float64) (vec3, float64) {
	rm := sc.room
	switch r.pick(3, 1, 1) {
	case 0:
		return v3(r.rangef(rm.x0+0.5, rm.x1-0.5), 0, rm.depth-halfD-0.02), 0
	case 1:
		return v3(rm.x0+halfD+0.02, 0, r.rangef(1, rm.depth-0.5)), -math.Pi / 2
	}
	return v3(rm.x1-halfD-0.02, 0, r.rangef(1, rm.depth-0.5)), math.Pi / 2
}

// diningSet places a table with up to n chairs around it and returns how many chairs
// it placed.
func (sc *scene) diningSet(r *rng, n int) int {
	z := math.Exp(r.rangef(math.Log(2), math.Log(math.Max(2.5, sc.room.depth-1.5))))
	p := sc.frustumPoint(z, r.rangef(-0.7, 0.7))
	tb := &builder{r: r.fork()}
	hw, hd := tb.table()
	yaw := sc.yaw + r.rangef(-0.4, 0.4)
	if r.chance(0.3) {
		yaw += math.Pi / 2
	}
	if !sc.fits(p, math.Hypot(hw, hd)+0.5, nil) {
		return 0
	}
	table := tb.place(Table, p, yaw, hw, hd)
	sc.objs = append(sc.objs, table)
	// Seats around the table in table-local coordinates: behind, in front, sides.
	type seat struct{ x, z, face float64 }
	seats := []seat{{0, hd, 0}, {0, -hd, math.Pi}, {-hw, 0, -math.Pi / 2}, {hw, 0, math.Pi / 2}}
	if hw > 0.6 {
		seats = append(seats, seat{-hw / 2, hd, 0}, seat{hw / 2, -hd, math.Pi})
		seats[0].x = hw / 2
		seats[1].x = -hw / 2
	}
	placed := 0
	rot := rotY(yaw)
	for _, i := range perm(r, len(seats)) {
		if placed == n {
			break
		}
		s := seats[i]
		b, chw, chd := sc.build(r, Chair)
		// Push the chair in partly under the table top.
		out := chd * r.rangef(0.2, 1.3)
		dir := rotY(s.face).mul(v3(0, 0, 1))
		local := v3(s.x, 0, s.z).add(dir.scale(out))
		cp := rot.mul(local).add(p)
		if !sc.fits(cp, math.Hypot(chw, chd), map[*object]bool{table: true}) {
			continue
		}
		cyaw := yaw + s.face + r.rangef(-0.3, 0.3)
		sc.objs = append(sc.objs, b.place(Chair, cp, cyaw, chw, chd))
		placed++
	}
	return placed
}

func perm(r *rng, n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := r.intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// depthOrder sorts objects far to near from the camera (the painter's order).
func depthOrder(objs []*object, cam *camera) []*object {
	out := append([]*object(nil), objs...)
	key := func(o *object) float64 { return cam.toCam(o.pos.add(v3(0, o.height/2, 0))).len() }
	sort.SliceStable(out, func(i, j int) bool { return key(out[i]) > key(out[j]) })
	return out
}

// camera is the scene's own camera.
func (sc *scene) camera() *camera {
	return newCamera(sc.camPos, sc.yaw, sc.pitch, sc.roll, sc.f, sc.w, sc.h)
}
