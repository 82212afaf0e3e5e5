package synth

import "math"

// rng is a small splitmix64 generator. The renderer owns its generator (rather than
// math/rand) so that a seed names the same scene in every Go release.
type rng struct{ s uint64 }

func newRNG(seed int64, stream uint64) *rng {
	r := &rng{s: uint64(seed)*0x9E3779B97F4A7C15 ^ stream*0xD1B54A32D192ED03}
	r.next()
	return r
}

func (r *rng) next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

// float returns a uniform number in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// rangef returns a uniform number in [lo, hi).
func (r *rng) rangef(lo, hi float64) float64 { return lo + (hi-lo)*r.float() }

// intn returns a uniform integer in [0, n).
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// chance is true with probability p.
func (r *rng) chance(p float64) bool { return r.float() < p }

// norm returns a standard normal number (Box-Muller).
func (r *rng) norm() float64 {
	u := 1 - r.float()
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*r.float())
}

// pick returns an index drawn with the given relative weights.
func (r *rng) pick(weights ...float64) int {
	var sum float64
	for _, w := range weights {
		sum += w
	}
	x := r.float() * sum
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}

// fork derives an independent generator, so that adding draws to one part of the scene
// does not shift every later part.
func (r *rng) fork() *rng { return &rng{s: r.next()} }

// hash2 maps integer lattice coordinates to [0, 1): the base of the value noise.
func hash2(x, y int64, seed uint64) float64 {
	h := uint64(x)*0x8CB92BA72F3D8DD7 ^ uint64(y)*0xB492B66FBE98F273 ^ seed*0x9E3779B97F4A7C15
	h ^= h >> 29
	h *= 0xBF58476D1CE4E5B9
	h ^= h >> 32
	return float64(h>>11) / (1 << 53)
}

// noise2 is smooth value noise in [0, 1).
func noise2(x, y float64, seed uint64) float64 {
	fx, fy := math.Floor(x), math.Floor(y)
	ix, iy := int64(fx), int64(fy)
	tx, ty := x-fx, y-fy
	tx = tx * tx * (3 - 2*tx)
	ty = ty * ty * (3 - 2*ty)
	a := hash2(ix, iy, seed)
	b := hash2(ix+1, iy, seed)
	c := hash2(ix, iy+1, seed)
	d := hash2(ix+1, iy+1, seed)
	return a + (b-a)*tx + (c-a)*ty + (a-b-c+d)*tx*ty
}

// fbm sums octaves of value noise, dropping octaves finer than the pixel footprint
// (in noise units) so distant textures do not alias.
func fbm(x, y float64, seed uint64, octaves int, footprint float64) float64 {
	var sum, amp, norm float64 = 0, 1, 0
	scale := 1.0
	for o := 0; o < octaves; o++ {
		if footprint*scale > 1 {
			sum += 0.5 * amp // the average of an octave too fine to see
		} else {
			sum += noise2(x*scale, y*scale, seed+uint64(o)) * amp
		}
		norm += amp
		amp *= 0.5
		scale *= 2
	}
	return sum / norm
}

func clamp(x, lo, hi float64) float64 {
	if x < lo {
		return lo
	}
	if x > hi {
		return hi
	}
	return x
}

func smoothstep(a, b, x float64) float64 {
	t := clamp((x-a)/(b-a), 0, 1)
	return t * t * (3 - 2*t)
}

// sin2pi is sin(2*pi*t).
func sin2pi(t float64) float64 { return math.Sin(2 * math.Pi * t) }
