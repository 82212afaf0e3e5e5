package todarknet

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
)

// fromLine returns the thresholds a batch norm y = A*acc + B gives, as a trainer would
// compute them (DESIGN.md section 4), unclamped.
func fromLine(A, B, s float64) []int32 {
	t := make([]int32, 7)
	for k := 1; k <= 7; k++ {
		t[k-1] = int32(math.Ceil(((float64(k)-0.5)*s - B) / A))
	}
	return t
}

// lineThresholds derives the thresholds of y = A*acc + B quantized with scale s to
// levels 0..n, as a reader of a fitted batch norm does: the one derivation on a channel
// of gain A and bias B (no batch norm).
func lineThresholds(A, B, s float64, n int, reach int64) ([]int32, bool) {
	c := &quant.Conv{Bias: []float32{float32(B)}}
	return channelLevel(&quant.Model{}, c, 0, A, 1, float32(s), bits.Len(uint(n))).Thresholds(int(reach))
}

// checkFit fits a channel, derives its thresholds back and requires the same levels.
func checkFit(t *testing.T, th []int32, inv bool, s float64, reach int64, want FitKind) Fit {
	t.Helper()
	f, err := FitChannel(th, inv, s, reach)
	if err != nil {
		t.Fatal(err)
	}
	if f.Kind != want {
		t.Fatalf("thresholds %v invert %v: fit %v (margin %g), want %v", th, inv, f.Kind, f.Margin, want)
	}
	got, ginv := lineThresholds(f.A, f.B, s, len(th), reach)
	if same := SameLevels(th, inv, got, ginv, reach); same != (want != FitApprox) {
		t.Fatalf("thresholds %v invert %v: fit A=%g B=%g derives %v invert %v (same levels %v)", th, inv, f.A, f.B, got, ginv, same)
	}
	return f
}

func TestFitLinesFromBatchNorms(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		s := 0.1 + 2*r.Float64()
		A := math.Exp(r.Float64()*8-5) * s // crossing steps from ~0.15 to ~150 acc units
		B := (r.Float64()*2 - 1) * 200 * A
		th := fromLine(A, B, s)
		f := checkFit(t, th, false, s, 5000, FitExact)
		if f.Margin <= 0 || f.Margin > 0.5 {
			t.Fatalf("margin %g out of (0, 1/2]", f.Margin)
		}
	}
}

func TestFitEvenSpacingIsMidway(t *testing.T) {
	// Thresholds 10, 20, ..., 70: crossings at 9.5, 19.5, ... (margin 1/2), A = s/10.
	th := []int32{10, 20, 30, 40, 50, 60, 70}
	f := checkFit(t, th, false, 1, 1000, FitExact)
	if math.Abs(f.Margin-0.5) > 1e-9 || math.Abs(f.A-0.1) > 1e-12 {
		t.Fatalf("fit %+v, want A=0.1 with margin 1/2", f)
	}
}

func TestFitInverted(t *testing.T) {
	// t_k is level k's threshold, so an inverted channel's descend.
	th := []int32{30, 20, 10, 0, -10, -20, -30}
	f := checkFit(t, th, true, 0.5, 1000, FitExact)
	if f.A >= 0 {
		t.Fatalf("inverted channel fitted with A = %g, want negative", f.A)
	}
	// The derived form is the engine's: same thresholds, invert set.
	got, inv := lineThresholds(f.A, f.B, 0.5, 7, 1000)
	if !inv || !equal32(got, th) {
		t.Fatalf("derived %v invert %v, want %v inverted", got, inv, th)
	}
}

func TestFitConstantAndOutOfRange(t *testing.T) {
	const reach = 100
	f := checkFit(t, []int32{-500, -200, 101, 300, 400, 500, 600}, false, 1, reach, FitConstant)
	if f.A != 0 || f.B != 2 {
		t.Fatalf("constant channel: A=%g B=%g, want 0 and level 2", f.A, f.B)
	}
	checkFit(t, []int32{-500, -200, -100, 5, 500, 600, 700}, false, 1, reach, FitExact)
	checkFit(t, []int32{-500, -200, -100, 5, 500, 600, 700}, true, 1, reach, FitExact)
	checkFit(t, []int32{7, 7, 7, 7, 7, 7, 7}, false, 1, reach, FitExact)
}

func TestFitApprox(t *testing.T) {
	// Spacing 1 then 50: no line crosses at both.
	checkFit(t, []int32{0, 1, 2, 50, 100, 150, 200}, false, 1, 1000, FitApprox)
}

func TestFitErrors(t *testing.T) {
	for _, c := range []struct {
		t []int32
		s float64
	}{{nil, 1}, {[]int32{1}, 0}, {[]int32{1}, math.NaN()}} {
		if _, err := FitChannel(c.t, false, c.s, 10); err == nil {
			t.Errorf("FitChannel(%v, scale %g) accepted", c.t, c.s)
		}
	}
}

func equal32(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSnapGain(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const sIn = 4.0 / 7
	for i := 0; i < 1000; i++ {
		s := 0.1 + 2*r.Float64()
		A := math.Exp(r.Float64()*8-5) * s
		B := (r.Float64()*2 - 1) * 200 * A
		th := fromLine(A, B, s)
		inv := r.IntN(2) == 0
		f, err := FitChannel(th, inv, s, 5000)
		if err != nil {
			t.Fatal(err)
		}
		g := SnapGain(f, th, inv, s, sIn, 5000)
		frac, _ := math.Frexp(math.Abs(g.A) / sIn)
		if x := frac * (1 << GainBits); g.Kind != FitExact || math.Abs(x-math.Round(x)) > 1e-6 || (g.A < 0) != inv {
			// A few channels may keep an unrounded gain when rounding would lose them.
			if g != f {
				t.Fatalf("%v: snapped %+v, gain %v not %d-bit", th, g, math.Abs(g.A)/sIn, GainBits)
			}
			continue
		}
		got, ginv := lineThresholds(g.A, g.B, s, 7, 5000)
		if !SameLevels(th, inv, got, ginv, 5000) {
			t.Fatalf("%v invert %v: snapped fit %+v derives %v invert %v", th, inv, g, got, ginv)
		}
	}
}
