package todarknet

import (
	"fmt"
	"math"
	"slices"
)

// FitKind says how well one affine map reproduces a channel's thresholds.
type FitKind int

const (
	// FitExact: y = A*acc + B quantizes to the channel's levels for every reachable acc.
	FitExact FitKind = iota
	// FitConstant: the channel's level does not depend on acc in the reachable range.
	FitConstant
	// FitApprox: no affine map reproduces the thresholds (they are not spaced like the
	// rounded points of one line); the fit minimizes the largest threshold error.
	FitApprox
)

func (k FitKind) String() string {
	switch k {
	case FitExact:
		return "exact"
	case FitConstant:
		return "constant"
	case FitApprox:
		return "approx"
	}
	return fmt.Sprintf("FitKind(%d)", int(k))
}

// Fit is the affine map y = A*acc + B chosen for one channel.
type Fit struct {
	A, B float64
	Kind FitKind
	// Margin is, in acc units, how far the map's level crossings stay inside the intervals
	// that give the channel's thresholds (at most 1/2). Negative for FitApprox: the largest
	// distance by which a crossing misses its interval.
	Margin float64
}

// minStep bounds the acc distance between two level crossings from below, i.e. the slope
// A from above (A <= 16*s): channels whose thresholds coincide need a steep map, not an
// infinite one.
const minStep = 1.0 / 16

// Step is one threshold constraint in increasing form: the crossing u of level j must
// satisfy lo < u <= hi; lo = -Inf ("always": the level is reached at every acc) or
// hi = +Inf ("never") stand for thresholds beyond the reachable range.
type step struct{ lo, hi float64 }

// FitChannel finds y = A*acc + B whose quantization with scale s and levels 0..n (n =
// len(t)) gives the channel's levels: count(acc >= t_k), or n - count when invert, for
// every integer acc in [-reach, reach]. Among exact maps it picks the one with the
// largest margin (crossings mid-way between integers when the thresholds are evenly
// spaced); when none exists, the one with the smallest largest error.
func FitChannel(t []int32, invert bool, s float64, reach int64) (Fit, error) {
	n := len(t)
	if n == 0 || s <= 0 || math.IsNaN(s) || math.IsInf(s, 0) || reach < 0 {
		return Fit{}, fmt.Errorf("fit channel: %d thresholds, scale %g, reach %d (need thresholds, a positive scale)", n, s, reach)
	}
	steps, always := increasing(t, invert, reach)
	if always >= 0 {
		return Fit{A: 0, B: float64(always) * s, Kind: FitConstant, Margin: 0.5}, nil
	}
	d, a, m := solve(steps)
	f := Fit{A: s / d, Margin: m, Kind: FitExact}
	if m <= 0 {
		f.Kind = FitApprox
	}
	// Crossing k (1-based) at u_k = a + k*d: A*u_k + B = (k-1/2)*s.
	f.B = -s/2 - f.A*a
	if invert {
		// increasing() worked on acc' = -acc.
		f.A = -f.A
	}
	return f, nil
}

// increasing turns a channel into the constraints of a map increasing in acc' (acc' =
// acc, or -acc for an inverted channel): level >= j iff acc' >= c_j with c ascending.
// For a constant channel it returns the constant level as always (else -1).
func increasing(t []int32, invert bool, reach int64) (steps []step, always int) {
	n := len(t)
	sorted := make([]int64, n)
	for i, v := range t {
		sorted[i] = int64(v)
	}
	slices.Sort(sorted)
	c := make([]int64, n)
	for j := range c {
		if invert {
			// level >= j+1 iff acc < sorted[n-1-j] iff -acc >= 1 - sorted[n-1-j].
			c[j] = 1 - sorted[n-1-j]
		} else {
			c[j] = sorted[j]
		}
	}
	steps = make([]step, n)
	always, finite := 0, false
	for j, v := range c {
		switch {
		case v <= -reach:
			steps[j] = step{math.Inf(-1), float64(-reach)}
			always++
		case v > reach:
			steps[j] = step{float64(reach), math.Inf(1)}
		default:
			steps[j] = step{float64(v - 1), float64(v)}
			finite = true
		}
	}
	if !finite {
		return nil, always
	}
	return steps, -1
}

// solve maximizes the margin m over the step d >= minStep and offset a of the crossings
// u_j = a + (j+1)*d subject to lo_j + m <= u_j <= hi_j - m. For a fixed d the best m is
// g(d)/2 with g(d) = min_j(hi_j - (j+1)d) - max_j(lo_j - (j+1)d), a concave piecewise
// linear function whose breakpoints are where two hi lines or two lo lines cross; its
// maximum over [minStep, inf) is at minStep or at one of those. Ties go to the smallest
// d (the steepest map), which is also the unique optimum for evenly spaced thresholds.
func solve(steps []step) (d, a, m float64) {
	cands := []float64{minStep}
	for i := range steps {
		for j := i + 1; j < len(steps); j++ {
			for _, p := range [2][2]float64{{steps[i].hi, steps[j].hi}, {steps[i].lo, steps[j].lo}} {
				if math.IsInf(p[0], 0) || math.IsInf(p[1], 0) {
					continue
				}
				if x := (p[1] - p[0]) / float64(j-i); x > minStep {
					cands = append(cands, x)
				}
			}
		}
	}
	slices.Sort(cands)
	best := math.Inf(-1)
	for _, x := range cands {
		u, l := bounds(steps, x)
		if g := u - l; g > best+1e-9 {
			best, d, a = g, x, (u+l)/2
		}
	}
	return d, a, best / 2
}

// bounds returns min_j(hi_j - (j+1)d) and max_j(lo_j - (j+1)d) over the finite ends.
func bounds(steps []step, d float64) (u, l float64) {
	u, l = math.Inf(1), math.Inf(-1)
	for j, st := range steps {
		k := float64(j + 1)
		if !math.IsInf(st.hi, 0) {
			u = min(u, st.hi-k*d)
		}
		if !math.IsInf(st.lo, 0) {
			l = max(l, st.lo-k*d)
		}
	}
	return u, l
}

// GainBits is the number of significant bits of the batch-norm gain A/s_in (the factor
// a folded batch norm multiplies the +-1 weights by) the export chooses: a quantization
// flow that folds the batch norm into the weights and rounds binary weight scales to as
// many bits (quant/qonnx's RoundWeightScale, after `quant convert` without --keep-bn)
// then sees the gain exactly and derives the same thresholds.
const GainBits = 12

// SnapGain returns fit f of a channel (FitChannel's arguments) with its gain |A|/sIn
// rounded to GainBits significant bits (down or up, whichever keeps the larger margin)
// and the offset B chosen anew for that slope. It returns f unchanged when f is not
// exact or no rounded gain keeps it exact.
func SnapGain(f Fit, t []int32, invert bool, s, sIn float64, reach int64) Fit {
	if f.Kind != FitExact || sIn <= 0 {
		return f
	}
	steps, _ := increasing(t, invert, reach)
	best := f
	best.Margin = 0
	gain := math.Abs(f.A) / sIn
	for _, g := range roundSig(gain, GainBits) {
		A := g * sIn
		u, l := bounds(steps, s/A)
		if m := (u - l) / 2; m > best.Margin {
			a := (u + l) / 2
			best = Fit{A: A, B: -s/2 - A*a, Kind: FitExact, Margin: m}
			if invert {
				best.A = -A
			}
		}
	}
	if best.Margin <= 0 {
		return f
	}
	return best
}

// roundSig returns x rounded down and up to bits significant bits.
func roundSig(x float64, bits int) [2]float64 {
	frac, exp := math.Frexp(x) // x = frac * 2^exp, frac in [0.5, 1)
	scale := math.Ldexp(1, bits)
	return [2]float64{math.Ldexp(math.Floor(frac*scale)/scale, exp), math.Ldexp(math.Ceil(frac*scale)/scale, exp)}
}

// Level is a channel's output level at acc: count(acc >= t_k), or len(t) minus that
// when invert (the engine's negated output).
func Level(t []int32, invert bool, acc int64) int {
	n := 0
	for _, v := range t {
		if acc >= int64(v) {
			n++
		}
	}
	if invert {
		return len(t) - n
	}
	return n
}

// SameLevels reports whether two channels give the same level for every integer acc in
// [-reach, reach]. Levels change only at thresholds, so it compares them at both ends of
// the range and on both sides of every threshold.
func SameLevels(t1 []int32, inv1 bool, t2 []int32, inv2 bool, reach int64) bool {
	for _, p := range breakpoints(reach, t1, t2) {
		if Level(t1, inv1, p) != Level(t2, inv2, p) {
			return false
		}
	}
	return true
}

// breakpoints lists the accs in [-reach, reach] where channels with thresholds ts may
// change level: both ends and both sides of every threshold.
func breakpoints(reach int64, ts ...[]int32) []int64 {
	points := []int64{-reach, reach}
	for _, t := range ts {
		for _, v := range t {
			for _, p := range []int64{int64(v) - 1, int64(v)} {
				if p >= -reach && p <= reach {
					points = append(points, p)
				}
			}
		}
	}
	return points
}
