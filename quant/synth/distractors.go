package synth

import "math"

// Distractor furniture: things that share parts with chairs (legs, seats, cushions)
// but have no backrest, so the detector must learn what makes a chair.

func (b *builder) distractor(kind Class) (halfW, halfD float64) {
	switch kind {
	case Table:
		return b.table()
	case Stool:
		return b.stool()
	case Sofa:
		return b.sofa()
	case Shelf:
		return b.shelf()
	case Cabinet:
		return b.cabinet()
	case Plant:
		return b.plant()
	}
	return b.lamp()
}

func (b *builder) table() (float64, float64) {
	r := b.r
	top := b.frameSurface()
	if top.mat == matMetal {
		top = b.surf(woodColour(r), matWood)
	}
	legs := top
	if r.chance(0.4) {
		legs = b.frameSurface()
	}
	h := r.rangef(0.7, 0.77)
	if r.chance(0.25) { // coffee table
		h = r.rangef(0.35, 0.5)
	}
	t := r.rangef(0.025, 0.05)
	if r.chance(0.3) { // round
		rad := r.rangef(0.35, 0.6)
		b.cyl(v3(0, h-t, 0), v3(0, h, 0), rad, rad, 28, top)
		b.cyl(v3(0, 0, 0), v3(0, 0.03, 0), rad*0.5, rad*0.5, 20, legs)
		b.cyl(v3(0, 0.03, 0), v3(0, h-t, 0), 0.04, 0.04, 10, legs)
		return rad, rad
	}
	w, d := r.rangef(0.7, 1.8), r.rangef(0.55, 1.0)
	lt := r.rangef(0.035, 0.07)
	b.slab(v3(-w/2, h-t, -d/2), v3(w/2, h, d/2), top)
	if r.chance(0.5) { // apron
		ah := r.rangef(0.05, 0.1)
		in := r.rangef(0.03, 0.07)
		b.slab(v3(-w/2+in, h-t-ah, -d/2+in), v3(w/2-in, h-t, d/2-in), legs)
	}
	in := r.rangef(0.03, 0.1)
	for _, x := range []float64{-w/2 + in, w/2 - in} {
		for _, z := range []float64{-d/2 + in, d/2 - in} {
			b.beam(v3(x, 0, z), v3(x, h-t, z), lt, lt, legs)
		}
	}
	b.clutter(w/2-0.1, d/2-0.1, h)
	return w / 2, d / 2
}

// clutter puts a few small things on a top at height y: books, cups, a vase.
func (b *builder) clutter(hw, hd, y float64) {
	r := b.r
	for range r.pick(3, 2, 2, 1) {
		x, z := r.rangef(-hw, hw), r.rangef(-hd, hd)
		col := b.surf(paintColour(r), matPlastic)
		switch r.pick(2, 2, 1) {
		case 0: // book or box
			bw, bd, bh := r.rangef(0.12, 0.3), r.rangef(0.1, 0.22), r.rangef(0.02, 0.08)
			b.slab(v3(x-bw/2, y, z-bd/2), v3(x+bw/2, y+bh, z+bd/2), col)
		case 1: // cup or glass
			cr := r.rangef(0.03, 0.05)
			b.cyl(v3(x, y, z), v3(x, y+r.rangef(0.07, 0.12), z), cr*0.85, cr, 10, col)
		default: // vase, maybe with flowers
			vr := r.rangef(0.04, 0.08)
			vh := r.rangef(0.15, 0.3)
			b.cyl(v3(x, y, z), v3(x, y+vh, z), vr, vr*0.6, 12, col)
			if r.chance(0.5) {
				b.blob(v3(x, y+vh+0.06, z), 0.08, b.surf(hsv(r.float(), 0.6, 0.8), matFoliage))
			}
		}
	}
}

func (b *builder) stool() (float64, float64) {
	r := b.r
	frame := b.frameSurface()
	seat := b.seatSurface(frame)
	if r.chance(0.25) { // bench
		w, d, h := r.rangef(0.8, 1.5), r.rangef(0.3, 0.4), r.rangef(0.4, 0.48)
		b.slab(v3(-w/2, h-0.05, -d/2), v3(w/2, h, d/2), seat)
		for _, x := range []float64{-w/2 + 0.05, w/2 - 0.05} {
			for _, z := range []float64{-d/2 + 0.04, d/2 - 0.04} {
				b.beam(v3(x, 0, z), v3(x, h-0.05, z), 0.04, 0.04, frame)
			}
		}
		return w / 2, d / 2
	}
	h := r.rangef(0.42, 0.8)
	sr := r.rangef(0.15, 0.22)
	if r.chance(0.5) {
		b.cyl(v3(0, h-0.05, 0), v3(0, h, 0), sr, sr, 20, seat)
	} else {
		b.slab(v3(-sr, h-0.05, -sr), v3(sr, h, sr), seat)
	}
	n := 3 + r.intn(2)
	foot := sr + r.rangef(0, 0.06)
	spin := r.float()
	for i := range n {
		a := spin + float64(i)*2*math.Pi/float64(n)
		s, c := math.Sincos(a)
		b.beam(v3(foot*s, 0, foot*c), v3(sr*0.7*s, h-0.05, sr*0.7*c), 0.03, 0.03, frame)
	}
	return foot, foot
}

func (b *builder) sofa() (float64, float64) {
	r := b.r
	w, d := r.rangef(1.4, 2.4), r.rangef(0.8, 1.0)
	fab := b.surf(fabricColour(r), matFabric)
	if r.chance(0.25) {
		fab = b.surf(hsv(r.rangef(0.02, 0.1), r.rangef(0.3, 0.8), r.rangef(0.1, 0.6)), matLeather)
	}
	legH, sh := r.rangef(0.03, 0.12), r.rangef(0.4, 0.46)
	backTop, armH := r.rangef(0.75, 0.95), r.rangef(0.55, 0.68)
	armW, backT := r.rangef(0.1, 0.22), r.rangef(0.15, 0.25)
	b.slab(v3(-w/2, legH, -d/2), v3(w/2, sh-0.1, d/2), fab)
	n := 2 + r.intn(2)
	cw := (w - 2*armW) / float64(n)
	for i := range n {
		x0 := -w/2 + armW + float64(i)*cw
		b.slab(v3(x0+0.005, sh-0.1, -d/2+0.02), v3(x0+cw-0.005, sh, d/2-backT), fab)
		b.slab(v3(x0+0.005, sh, d/2-backT-0.08), v3(x0+cw-0.005, backTop-0.04, d/2-backT), fab)
	}
	b.slab(v3(-w/2, legH, d/2-backT), v3(w/2, backTop, d/2), fab)
	for _, x := range []float64{-w/2 + armW/2, w/2 - armW/2} {
		b.slab(v3(x-armW/2, legH, -d/2), v3(x+armW/2, armH, d/2), fab)
	}
	legs := b.frameSurface()
	for _, x := range []float64{-w/2 + 0.05, w/2 - 0.05} {
		for _, z := range []float64{-d/2 + 0.05, d/2 - 0.05} {
			b.cyl(v3(x, 0, z), v3(x, legH, z), 0.02, 0.025, 8, legs)
		}
	}
	return w / 2, d / 2
}

func (b *builder) shelf() (float64, float64) {
	r := b.r
	w, d, h := r.rangef(0.6, 1.2), r.rangef(0.25, 0.4), r.rangef(1.0, 2.1)
	wood := b.frameSurface()
	if wood.mat == matMetal {
		wood = b.surf(paintColour(r), matPaint)
	}
	t := 0.02
	b.slab(v3(-w/2, 0, d/2-0.01), v3(w/2, h, d/2), wood)
	b.slab(v3(-w/2, 0, -d/2), v3(-w/2+t, h, d/2), wood)
	b.slab(v3(w/2-t, 0, -d/2), v3(w/2, h, d/2), wood)
	n := 2 + int(h/0.35)
	for i := range n {
		y := float64(i) * (h - t) / float64(n-1)
		b.slab(v3(-w/2+t, y, -d/2), v3(w/2-t, y+t, d/2-0.01), wood)
		if i == n-1 || r.chance(0.2) {
			continue
		}
		// Books: runs of boxes with random heights and colours.
		x := -w/2 + t + r.rangef(0, 0.1)
		gap := (h - t) / float64(n-1)
		for x < w/2-t-0.05 {
			bw := r.rangef(0.02, 0.05)
			bh := math.Min(gap-0.03, r.rangef(0.15, 0.3))
			if r.chance(0.15) {
				x += r.rangef(0.05, 0.2)
				continue
			}
			col := hsv(r.float(), r.rangef(0.3, 0.8), r.rangef(0.2, 0.8))
			b.slab(v3(x, y+t, -d/2+0.02+r.rangef(0, 0.04)), v3(x+bw, y+t+bh, d/2-0.03), b.surf(col, matPaint))
			x += bw + 0.002
		}
	}
	return w / 2, d / 2
}

func (b *builder) cabinet() (float64, float64) {
	r := b.r
	w, d, h := r.rangef(0.6, 1.6), r.rangef(0.35, 0.55), r.rangef(0.6, 1.1)
	body := b.frameSurface()
	if body.mat == matMetal {
		body = b.surf(paintColour(r), matPaint)
	}
	legH := 0.0
	if r.chance(0.5) {
		legH = r.rangef(0.05, 0.2)
		legs := b.frameSurface()
		for _, x := range []float64{-w/2 + 0.04, w/2 - 0.04} {
			for _, z := range []float64{-d/2 + 0.04, d/2 - 0.04} {
				b.beam(v3(x, 0, z), v3(x, legH, z), 0.03, 0.03, legs)
			}
		}
	}
	b.slab(v3(-w/2, legH, -d/2), v3(w/2, h, d/2), body)
	if h < 1 {
		b.clutter(w/2-0.08, d/2-0.08, h)
	}
	front := b.surf(body.col.scale(r.rangef(0.8, 1.1)), body.mat)
	cols := 1 + r.intn(3)
	rows := 1 + r.intn(3)
	knob := b.surf(metalColour(r), matMetal)
	for i := range cols {
		for j := range rows {
			x0 := -w/2 + 0.02 + float64(i)*(w-0.04)/float64(cols)
			x1 := x0 + (w-0.04)/float64(cols) - 0.01
			y0 := legH + 0.02 + float64(j)*(h-legH-0.04)/float64(rows)
			y1 := y0 + (h-legH-0.04)/float64(rows) - 0.01
			b.slab(v3(x0, y0, -d/2-0.012), v3(x1, y1, -d/2), front)
			kx, ky := (x0+x1)/2, (y0+y1)/2
			if rows == 1 {
				kx, ky = x1-0.05, y1-0.1
			}
			b.slab(v3(kx-0.03, ky-0.008, -d/2-0.025), v3(kx+0.03, ky+0.008, -d/2-0.012), knob)
		}
	}
	return w / 2, d / 2
}

func (b *builder) plant() (float64, float64) {
	r := b.r
	pr := r.rangef(0.1, 0.22)
	ph := r.rangef(0.18, 0.45)
	pot := b.surf(paintColour(r), matPlastic)
	if r.chance(0.4) {
		pot = b.surf(hsv(r.rangef(0.02, 0.07), r.rangef(0.5, 0.8), r.rangef(0.35, 0.65)), matPaint) // terracotta
	}
	b.cyl(v3(0, 0, 0), v3(0, ph, 0), pr*0.75, pr, 14, pot)
	h := r.rangef(0.5, 1.7)
	green := hsv(r.rangef(0.22, 0.38), r.rangef(0.4, 0.8), r.rangef(0.2, 0.5))
	leaf := b.surf(green, matFoliage)
	if r.chance(0.5) { // trunk and crown
		trunk := b.surf(hsv(0.08, 0.5, 0.3), matWood)
		b.cyl(v3(0, ph, 0), v3(0, h*0.6, 0), 0.02, 0.015, 6, trunk)
	}
	n := 6 + r.intn(10)
	for range n {
		y := ph + (h-ph)*math.Sqrt(r.float())
		spread := pr * 1.5 * (0.4 + (y-ph)/(h-ph))
		a := r.float() * 2 * math.Pi
		s, c := math.Sincos(a)
		rr := spread * r.float()
		b.blob(v3(rr*s, y, rr*c), r.rangef(0.08, 0.18)*math.Sqrt(h), leaf)
	}
	return pr * 1.5, pr * 1.5
}

func (b *builder) lamp() (float64, float64) {
	r := b.r
	metal := b.surf(metalColour(r), matMetal)
	h := r.rangef(1.3, 1.8)
	br := r.rangef(0.12, 0.18)
	b.cyl(v3(0, 0, 0), v3(0, 0.03, 0), br, br, 16, metal)
	b.cyl(v3(0, 0.03, 0), v3(0, h-0.1, 0), 0.012, 0.012, 6, metal)
	shade := b.surf(hsv(r.rangef(0.08, 0.15), r.rangef(0.05, 0.4), r.rangef(0.75, 1)), matGlow)
	sr := r.rangef(0.15, 0.25)
	if r.chance(0.3) {
		b.blob(v3(0, h, 0), sr, shade)
	} else {
		b.cyl(v3(0, h-0.2, 0), v3(0, h+0.05, 0), sr, sr*r.rangef(0.5, 0.9), 18, shade)
	}
	return br, br
}
