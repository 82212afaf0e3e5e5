package synth

import "math"

// Class is an object class. Chair is class 0 of every dataset; the others are the
// distractors, labelled only when a dataset asks for all classes.
type Class int

const (
	Chair Class = iota
	Table
	Stool
	Sofa
	Shelf
	Cabinet
	Plant
	Lamp
	numClasses
)

// ClassNames are the class names in class-id order.
var ClassNames = [numClasses]string{"chair", "table", "stool", "sofa", "shelf", "cabinet", "plant", "lamp"}

func (c Class) String() string {
	if c >= 0 && c < numClasses {
		return ClassNames[c]
	}
	return "class?"
}

// Palettes. Colours are drawn per object so that no colour identifies a class.

func woodColour(r *rng) rgb {
	return hsv(r.rangef(0.05, 0.11), r.rangef(0.35, 0.75), r.rangef(0.22, 0.85))
}

func paintColour(r *rng) rgb {
	switch r.pick(2, 2, 5, 2) {
	case 0:
		return hsv(0, 0, r.rangef(0.82, 0.96)) // white
	case 1:
		return hsv(0, 0, r.rangef(0.06, 0.2)) // black
	case 2:
		return hsv(r.float(), r.rangef(0.35, 0.85), r.rangef(0.35, 0.9))
	}
	return hsv(r.float(), r.rangef(0, 0.12), r.rangef(0.3, 0.75)) // greys
}

func fabricColour(r *rng) rgb {
	if r.chance(0.3) {
		return hsv(r.float(), r.rangef(0, 0.15), r.rangef(0.12, 0.8))
	}
	return hsv(r.float(), r.rangef(0.2, 0.7), r.rangef(0.2, 0.8))
}

func metalColour(r *rng) rgb {
	if r.chance(0.5) {
		return hsv(0, 0, r.rangef(0.55, 0.8)) // chrome / aluminium
	}
	return hsv(r.float(), r.rangef(0, 0.2), r.rangef(0.08, 0.3))
}

func (b *builder) surf(c rgb, m material) surface { return surface{col: c, mat: m, seed: b.r.next()} }

// frameSurface picks the material of legs and frames.
func (b *builder) frameSurface() surface {
	switch b.r.pick(5, 2, 3) {
	case 0:
		return b.surf(woodColour(b.r), matWood)
	case 1:
		return b.surf(paintColour(b.r), matPaint)
	}
	return b.surf(metalColour(b.r), matMetal)
}

func (b *builder) seatSurface(frame surface) surface {
	switch b.r.pick(3, 3, 2, 1) {
	case 0:
		return frame
	case 1:
		return b.surf(fabricColour(b.r), matFabric)
	case 2:
		return b.surf(paintColour(b.r), matPlastic)
	}
	return b.surf(hsv(b.r.rangef(0.02, 0.1), b.r.rangef(0.3, 0.8), b.r.rangef(0.1, 0.6)), matLeather)
}

// chair builds one of the chair types; all have a backrest, which is what the
// detector must learn separates them from stools and benches.
func (b *builder) chair() (halfW, halfD float64) {
	switch b.r.pick(4, 2, 2, 1.5, 1.2, 1.5) {
	case 0:
		return b.sideChair(false)
	case 1:
		return b.sideChair(true)
	case 2:
		return b.armchair()
	case 3:
		return b.officeChair()
	case 4:
		return b.foldingChair()
	}
	return b.barChair()
}

// sideChair: four legs, a seat, back posts and a backrest (panel, rails or spindles);
// arms turns it into a wooden armchair.
func (b *builder) sideChair(arms bool) (float64, float64) {
	r := b.r
	sw, sd := r.rangef(0.38, 0.5), r.rangef(0.37, 0.48)
	sh, st := r.rangef(0.42, 0.48), r.rangef(0.02, 0.07)
	frame := b.frameSurface()
	lt := r.rangef(0.025, 0.05)
	round := frame.mat == matMetal || r.chance(0.3)
	if frame.mat == matMetal {
		lt = r.rangef(0.014, 0.028)
	}
	seat := b.seatSurface(frame)
	back := seat
	if r.chance(0.3) {
		back = frame
	}
	splay := 0.0
	if r.chance(0.35) {
		splay = r.rangef(0.01, 0.06)
	}
	bh := r.rangef(0.3, 0.5)
	tilt := r.rangef(0.03, 0.22)
	inset := r.rangef(0, 0.03)
	lx, lz := sw/2-lt/2-inset, sd/2-lt/2-inset
	leg := func(x, z float64, top float64) {
		foot := v3(x+math.Copysign(splay, x), 0, z+math.Copysign(splay, z))
		if round {
			b.cyl(foot, v3(x, top, z), lt/2*0.8, lt/2, 8, frame)
		} else {
			b.beam(foot, v3(x, top, z), lt, lt, frame)
		}
	}
	for _, x := range []float64{-lx, lx} {
		leg(x, -lz, sh-st)
		leg(x, lz, sh-st)
	}
	if r.chance(0.35) { // stretchers
		y := r.rangef(0.1, 0.2)
		for _, x := range []float64{-lx, lx} {
			b.beam(v3(x, y, -lz), v3(x, y, lz), lt*0.6, lt*0.6, frame)
		}
		b.beam(v3(-lx, y, 0), v3(lx, y, 0), lt*0.6, lt*0.6, frame)
	}
	b.slab(v3(-sw/2, sh-st, -sd/2), v3(sw/2, sh, sd/2), seat)
	if seat.mat == matFabric && r.chance(0.6) { // cushion
		c := r.rangef(0.02, 0.05)
		b.slab(v3(-sw/2+0.01, sh, -sd/2+0.01), v3(sw/2-0.01, sh+c, sd/2-0.03), seat)
	}
	// Back posts lean back by tilt from the rear of the seat.
	base := v3(0, sh, lz)
	up := v3(0, math.Cos(tilt), math.Sin(tilt))
	at := func(x, t float64) vec3 { return base.add(up.scale(bh * t)).add(v3(x, 0, 0)) }
	pw := lt
	if frame.mat == matMetal {
		pw = lt * 1.2
	}
	shell := seat.mat == matPlastic && r.chance(0.5)
	if !shell {
		for _, x := range []float64{-lx, lx} {
			b.beam(at(x, -0.05), at(x, 1), pw, pw, frame)
		}
	}
	rot := rotX(tilt)
	panel := func(t0, t1, halfw, thick float64, s surface) {
		c := at(0, (t0+t1)/2)
		b.box(c, v3(halfw, bh*(t1-t0)/2, thick/2), rot, s)
	}
	switch {
	case shell:
		panel(0.15, 1, sw/2, 0.025, seat)
	default:
		switch r.pick(3, 3, 2) {
		case 0: // solid or upholstered panel
			panel(r.rangef(0.25, 0.55), r.rangef(0.92, 1), lx, r.rangef(0.015, 0.04), back)
		case 1: // horizontal rails (ladder back)
			n := 2 + r.intn(3)
			rh := r.rangef(0.04, 0.1)
			for i := range n {
				t := 1 - rh/2/bh - float64(i)*r.rangef(0.18, 0.25)
				panel(t-rh/bh/2, t+rh/bh/2, lx, 0.02, back)
			}
		case 2: // top rail and spindles
			rh := r.rangef(0.05, 0.12)
			panel(1-rh/bh, 1, lx+pw/2, 0.025, back)
			n := 3 + r.intn(4)
			for i := range n {
				x := -lx + 2*lx*float64(i+1)/float64(n+1)
				b.beam(at(x, 0), at(x, 1-rh/bh), 0.015, 0.015, frame)
			}
		}
	}
	if arms {
		ah := sh + r.rangef(0.18, 0.25)
		for _, x := range []float64{-lx, lx} {
			b.beam(v3(x, sh, -lz), v3(x, ah, -lz), lt, lt, frame)
			b.beam(v3(x, ah, -lz-0.04), v3(x, ah, lz+(ah-sh)*math.Tan(tilt)), r.rangef(0.04, 0.07), 0.03, frame)
		}
	}
	return sw/2 + splay, sd/2 + splay + bh*math.Sin(tilt)
}

// armchair: an upholstered easy chair (base, cushion, thick back, arms).
func (b *builder) armchair() (float64, float64) {
	r := b.r
	w, d := r.rangef(0.62, 0.92), r.rangef(0.65, 0.88)
	legH := r.rangef(0.03, 0.16)
	sh := r.rangef(0.38, 0.46)
	backTop := r.rangef(0.75, 1.0)
	armH := r.rangef(0.52, 0.68)
	armW := r.rangef(0.07, 0.18)
	backT := r.rangef(0.12, 0.22)
	fab := b.surf(fabricColour(r), matFabric)
	if r.chance(0.3) {
		fab = b.surf(hsv(r.rangef(0.02, 0.1), r.rangef(0.3, 0.8), r.rangef(0.1, 0.6)), matLeather)
	}
	cushion := fab
	if r.chance(0.25) {
		cushion = b.surf(fabricColour(r), fab.mat)
	}
	legs := b.frameSurface()
	for _, x := range []float64{-w/2 + 0.05, w/2 - 0.05} {
		for _, z := range []float64{-d/2 + 0.05, d/2 - 0.05} {
			b.cyl(v3(x, 0, z), v3(x, legH, z), 0.018, 0.022, 8, legs)
		}
	}
	b.slab(v3(-w/2, legH, -d/2), v3(w/2, sh-0.08, d/2), fab)
	b.slab(v3(-w/2+armW, sh-0.08, -d/2+0.01), v3(w/2-armW, sh, d/2-backT), cushion)
	tilt := r.rangef(0, 0.15)
	wings := r.chance(0.2)
	if !wings && r.chance(0.2) { // lounge chair: low, leaning back
		tilt = r.rangef(0.2, 0.35)
	}
	bc := v3(0, (legH+backTop)/2, d/2-backT/2)
	b.box(bc, v3(w/2-armW*0.5, (backTop-legH)/2, backT/2), rotX(tilt), fab)
	for _, x := range []float64{-w/2 + armW/2, w/2 - armW/2} {
		b.slab(v3(x-armW/2, legH, -d/2), v3(x+armW/2, armH, d/2-0.02), fab)
		if wings {
			// Wings: side panels from the arms up to the top of the back.
			b.slab(v3(x-armW/2, armH, d/2-backT-r.rangef(0.1, 0.25)), v3(x+armW/2, backTop-0.05, d/2), fab)
		}
	}
	return w / 2, d/2 + (backTop-legH)/2*math.Sin(tilt)
}

// officeChair: five-star base on casters, gas lift, seat, backrest on a spine.
func (b *builder) officeChair() (float64, float64) {
	r := b.r
	base := b.surf(metalColour(r), matMetal)
	if r.chance(0.5) {
		base = b.surf(hsv(0, 0, r.rangef(0.05, 0.15)), matPlastic)
	}
	fab := b.surf(fabricColour(r), matFabric)
	if r.chance(0.3) {
		fab = b.surf(hsv(0, 0, r.rangef(0.05, 0.2)), matLeather)
	}
	sh := r.rangef(0.44, 0.55)
	sw, sd := r.rangef(0.42, 0.52), r.rangef(0.4, 0.5)
	reach := r.rangef(0.26, 0.34)
	spin := r.float() * 2 * math.Pi / 5
	for i := range 5 {
		a := spin + float64(i)*2*math.Pi/5
		s, c := math.Sincos(a)
		end := v3(reach*s, 0.06, reach*c)
		b.beam(v3(0, 0.1, 0), end, 0.04, 0.03, base)
		b.cyl(end.add(v3(0, -0.06, 0)), end, 0.025, 0.025, 6, b.surf(hsv(0, 0, 0.08), matPlastic))
	}
	b.cyl(v3(0, 0.06, 0), v3(0, sh-0.1, 0), 0.03, 0.025, 10, base)
	b.slab(v3(-0.1, sh-0.12, -0.1), v3(0.1, sh-0.07, 0.1), base)
	b.slab(v3(-sw/2, sh-0.08, -sd/2), v3(sw/2, sh, sd/2), fab)
	tilt := r.rangef(0.05, 0.25)
	bh := r.rangef(0.35, 0.6)
	b0 := v3(0, sh-0.05, sd/2+0.02)
	up := v3(0, math.Cos(tilt), math.Sin(tilt))
	b.beam(v3(0, sh-0.08, sd/2-0.1), b0, 0.05, 0.02, base)
	b.beam(b0, b0.add(up.scale(0.15)), 0.05, 0.02, base)
	bc := b0.add(up.scale(0.1 + bh/2))
	b.box(bc, v3(r.rangef(0.19, 0.25), bh/2, 0.035), rotX(tilt), fab)
	if r.chance(0.5) { // arms
		for _, x := range []float64{-sw/2 + 0.02, sw/2 - 0.02} {
			b.beam(v3(x, sh-0.04, 0), v3(x, sh+0.2, 0), 0.03, 0.05, base)
			b.slab(v3(x-0.03, sh+0.2, -0.14), v3(x+0.03, sh+0.23, 0.1), b.surf(hsv(0, 0, 0.1), matPlastic))
		}
	}
	return reach, reach
}

// foldingChair: crossing metal frame, thin seat and a small back panel.
func (b *builder) foldingChair() (float64, float64) {
	r := b.r
	frame := b.surf(metalColour(r), matMetal)
	if r.chance(0.3) {
		frame = b.surf(woodColour(r), matWood)
	}
	seat := b.seatSurface(b.surf(paintColour(r), matPlastic))
	sw, sd, sh := r.rangef(0.38, 0.45), r.rangef(0.36, 0.42), r.rangef(0.43, 0.47)
	bh := r.rangef(0.35, 0.45)
	x := sw/2 - 0.01
	for _, sx := range []float64{-x, x} {
		foot := v3(sx, 0, -sd/2-0.03)
		top := v3(sx, sh+bh, sd/2+0.06)
		b.beam(foot, top, 0.022, 0.016, frame)
		xr := sx - math.Copysign(0.025, sx)
		b.beam(v3(xr, 0, sd/2+0.1), v3(xr, sh-0.02, -sd/2+0.05), 0.02, 0.015, frame)
	}
	b.beam(v3(-x, 0.01, -sd/2-0.03), v3(x, 0.01, -sd/2-0.03), 0.015, 0.015, frame)
	b.slab(v3(-sw/2+0.02, sh-0.025, -sd/2), v3(sw/2-0.02, sh, sd/2), seat)
	post := func(t float64) vec3 { return v3(0, 0, -sd/2-0.03).lerp(v3(0, sh+bh, sd/2+0.06), t) }
	tilt := math.Atan2(sd+0.09, sh+bh)
	c := post(0.86)
	b.box(c, v3(x-0.01, r.rangef(0.07, 0.11), 0.012), rotX(tilt), seat)
	return sw / 2, sd/2 + 0.1
}

// barChair: tall seat on splayed legs or a pedestal, foot ring, low curved back.
func (b *builder) barChair() (float64, float64) {
	r := b.r
	frame := b.frameSurface()
	seat := b.seatSurface(frame)
	sh := r.rangef(0.62, 0.8)
	sr := r.rangef(0.17, 0.22)
	b.cyl(v3(0, sh-0.05, 0), v3(0, sh, 0), sr, sr, 20, seat)
	foot := sr + r.rangef(0.02, 0.07)
	if r.chance(0.6) {
		for i := range 4 {
			a := math.Pi/4 + float64(i)*math.Pi/2
			s, c := math.Sincos(a)
			b.beam(v3(foot*s, 0, foot*c), v3(sr*0.7*s, sh-0.05, sr*0.7*c), 0.03, 0.03, frame)
		}
		y := r.rangef(0.22, 0.32)
		rr := foot - (foot-sr*0.7)*y/(sh-0.05)
		for i := range 4 {
			a0 := math.Pi/4 + float64(i)*math.Pi/2
			s0, c0 := math.Sincos(a0)
			s1, c1 := math.Sincos(a0 + math.Pi/2)
			b.beam(v3(rr*s0, y, rr*c0), v3(rr*s1, y, rr*c1), 0.018, 0.018, frame)
		}
	} else {
		b.cyl(v3(0, 0, 0), v3(0, 0.02, 0), foot, foot, 20, frame)
		b.cyl(v3(0, 0.02, 0), v3(0, sh-0.05, 0), 0.03, 0.03, 10, frame)
		b.cyl(v3(0, 0.25, 0), v3(0, 0.27, 0), sr*0.8, sr*0.8, 16, frame)
	}
	bh := r.rangef(0.22, 0.4)
	for _, a := range []float64{-0.7, 0.7} {
		s, c := math.Sincos(a)
		p := v3(sr*0.9*s, sh, sr*0.9*c)
		b.beam(p, p.add(v3(0, bh, 0.04)), 0.022, 0.022, frame)
	}
	// The back is an arc of panels behind the seat.
	n := 5
	backH := r.rangef(0.09, 0.16)
	for i := range n {
		a0 := -1.0 + 2*float64(i)/float64(n)
		a1 := a0 + 2.0/float64(n)
		s0, c0 := math.Sincos(a0)
		s1, c1 := math.Sincos(a1)
		rb := sr * 0.95
		b.beam(v3(rb*s0, sh+bh-backH/2, rb*c0+0.04), v3(rb*s1, sh+bh-backH/2, rb*c1+0.04), 0.02, backH, seat)
	}
	return foot, foot
}
