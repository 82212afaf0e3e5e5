package qnnmo

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// randomImage returns a CHW image with values in [0,1].
func randomImage(n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 3))
	img := make([]float32, n)
	for i := range img {
		img[i] = rng.Float32()
	}
	return img
}

// TestFirstLayerMatchesReference compares the first layer with a float64 direct
// convolution: levels may differ only where the float64 value sits within float32
// rounding of a quantization boundary.
func TestFirstLayerMatchesReference(t *testing.T) {
	m := loadModel(t)
	f, err := NewFirstLayer(m, 2)
	if err != nil {
		t.Fatal(err)
	}
	img := randomImage(3*416*416, 1)
	got, err := f.Levels(img)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Layers[0].Conv
	ties := 0
	for o := 0; o < 16; o++ {
		for y := 0; y < 208; y += 7 {
			for x := 0; x < 208; x += 5 {
				s := float64(c.Bias[o])
				for ch := 0; ch < 3; ch++ {
					for ky := 0; ky < 3; ky++ {
						for kx := 0; kx < 3; kx++ {
							yy, xx := 2*y+ky-1, 2*x+kx-1
							if yy < 0 || yy >= 416 || xx < 0 || xx >= 416 {
								continue
							}
							s += float64(c.Weights[((o*3+ch)*3+ky)*3+kx]) * float64(img[(ch*416+yy)*416+xx])
						}
					}
				}
				v := math.Max(0, math.Min(s, 4)) / 4 * 7
				want := uint8(math.RoundToEven(v))
				if g := got[(o*208+y)*208+x]; g != want {
					if math.Abs(v-math.Floor(v)-0.5) > 1e-4 {
						t.Fatalf("channel %d (%d,%d): level %d, reference %d (%.6f)", o, x, y, g, want, v)
					}
					ties++
				}
			}
		}
	}
	t.Logf("%d rounding ties differ", ties)
	// Run packs the same levels into engine records.
	l := f.OutLayout()
	buf := make([]byte, l.Size())
	if err := f.Run(buf, l, img); err != nil {
		t.Fatal(err)
	}
	want, _ := offload.Pack(got, l)
	if !bytes.Equal(buf, want) {
		t.Error("Run's records differ from Pack(Levels)")
	}
	compact := offload.CompactLayout(16, 208)
	cbuf := make([]byte, compact.Size())
	if err := f.Run(cbuf, compact, img); err != nil {
		t.Fatal(err)
	}
	if cw, _ := offload.Pack(got, compact); !bytes.Equal(cbuf, cw) {
		t.Error("compact records differ")
	}
}

func TestQuantizeHalfToEven(t *testing.T) {
	f := &FirstLayer{maxLevel: 7, clip: float32(float64(7) * float64(FirstActScale))}
	if f.clip != 4 {
		t.Fatalf("clip %v, want exactly 4", f.clip)
	}
	for _, c := range []struct {
		x    float32
		want uint8
	}{{-1, 0}, {0, 0}, {4.0 / 14, 0}, {3 * 4.0 / 14, 2}, {5 * 4.0 / 14, 2}, {4, 7}, {100, 7}, {0.3, 1}} {
		if got := f.quantize(c.x); got != c.want {
			t.Errorf("quantize(%v) = %d, want %d", c.x, got, c.want)
		}
	}
}

func TestLastLayerMatchesReference(t *testing.T) {
	m := loadModel(t)
	ll, err := NewLastLayer(m, 2)
	if err != nil {
		t.Fatal(err)
	}
	levels := randomLevels(512*169, 4)
	in, _ := offload.Pack(levels, offload.DDRLayout(512, 13))
	got, err := ll.Run(in, offload.DDRLayout(512, 13))
	if err != nil {
		t.Fatal(err)
	}
	c := m.Layers[13].Conv
	for o := 0; o < 125; o++ {
		for p := 0; p < 169; p++ {
			s := float64(c.Bias[o])
			for ch := 0; ch < 512; ch++ {
				s += float64(c.Weights[o*512+ch]) * float64(levels[ch*169+p])
			}
			if d := math.Abs(s - float64(got[o*169+p])); d > 1e-3*math.Max(1, math.Abs(s)) {
				t.Fatalf("output %d pixel %d: %v, reference %v", o, p, got[o*169+p], s)
			}
		}
	}
}

func BenchmarkFirstLayer(b *testing.B) {
	m := loadModel(b)
	img := randomImage(3*416*416, 2)
	for _, threads := range []int{1, 2} {
		b.Run(map[int]string{1: "threads=1", 2: "threads=2"}[threads], func(b *testing.B) {
			f, err := NewFirstLayer(m, threads)
			if err != nil {
				b.Fatal(err)
			}
			l := f.OutLayout()
			buf := make([]byte, l.Size())
			cpu0 := cpuTime()
			for b.Loop() {
				if err := f.Run(buf, l, img); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/float64(b.N), "cpu-ms/op")
		})
	}
}

func BenchmarkLastLayer(b *testing.B) {
	m := loadModel(b)
	in, _ := offload.Pack(randomLevels(512*169, 6), offload.DDRLayout(512, 13))
	for _, threads := range []int{1, 2} {
		b.Run(map[int]string{1: "threads=1", 2: "threads=2"}[threads], func(b *testing.B) {
			ll, err := NewLastLayer(m, threads)
			if err != nil {
				b.Fatal(err)
			}
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := ll.Run(in, offload.DDRLayout(512, 13)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/float64(b.N), "cpu-ms/op")
		})
	}
}

// The first layer's fast loop (eight outputs at a time, the quantizer as comparisons)
// gives exactly the levels of its definition: each output's float32 sum over the window
// in order, plus the bias, through quantize.
func TestFirstLayerFastPathExact(t *testing.T) {
	m := loadModel(t)
	f, err := NewFirstLayer(m, 2)
	if err != nil {
		t.Fatal(err)
	}
	// The quantizer's steps, on sums all around each boundary and at random.
	rng := rand.New(rand.NewPCG(7, 7))
	for o := 0; o < f.cout; o++ {
		var probes []float32
		for _, b := range f.bounds[o] {
			for d := int32(-300); d <= 300; d++ {
				probes = append(probes, math.Float32frombits(uint32(int32(math.Float32bits(b))+d)))
			}
		}
		for range 20000 {
			probes = append(probes, float32(rng.NormFloat64()*3))
		}
		for _, s := range probes {
			if got, want := f.levelOf(o, s), f.quantize(s+f.bias[o]); got != want {
				t.Fatalf("output %d, sum %v: level %d, quantize %d", o, s, got, want)
			}
		}
	}
	// Whole images, against the definition.
	n := f.cin * f.k * f.k
	for seed := uint64(1); seed <= 3; seed++ {
		img := randomImage(3*416*416, seed)
		got, err := f.Levels(img)
		if err != nil {
			t.Fatal(err)
		}
		col := make([]float32, n)
		for y := 0; y < f.dim; y++ {
			for x := 0; x < f.dim; x++ {
				f.gather(img, y, x, col)
				for o := 0; o < f.cout; o++ {
					var s float32
					for j, v := range col {
						s += f.w[o*n+j] * v
					}
					if want := f.quantize(s + f.bias[o]); got[(o*f.dim+y)*f.dim+x] != want {
						t.Fatalf("seed %d, output %d at (%d,%d): level %d, definition %d", seed, o, x, y, got[(o*f.dim+y)*f.dim+x], want)
					}
				}
			}
		}
	}
}

// The NEON kernel (on ARM: the board, or qemu-arm in CI) gives the Go loop's levels,
// also where a sum lands exactly on a step or one float32 beside it.
func TestLevels16NEONEqualsGo(t *testing.T) {
	if !haveNEON {
		t.Skip("no NEON on this machine (the board's kernel runs under scripts/test-arm.sh)")
	}
	rng := rand.New(rand.NewPCG(3, 9))
	for _, n := range []int{1, 2, 27, 75} {
		for range 200 {
			w, col := randomWindow(rng, n)
			// Steps around the real sums: equal, one float32 either side, or far.
			var bounds [7][16]float32
			for o := 0; o < 16; o++ {
				var s float32
				for j, v := range col {
					s += w[16*j+o] * v
				}
				for k := range bounds {
					switch rng.IntN(4) {
					case 0:
						bounds[k][o] = s
					case 1:
						bounds[k][o] = math.Nextafter32(s, float32(math.Inf(1)))
					case 2:
						bounds[k][o] = math.Nextafter32(s, float32(math.Inf(-1)))
					default:
						bounds[k][o] = float32(rng.NormFloat64())
					}
					if math.Abs(float64(bounds[k][o])) < 0x1p-126 { // NEON flushes subnormals (neonSafe)
						bounds[k][o] = 1e-3
					}
				}
			}
			var got, want [16]int32
			levels16NEON(&w[0], &col[0], n, &bounds, &got)
			levels16(w, col, &bounds, &want)
			if got != want {
				t.Fatalf("n %d: NEON levels %v, Go %v (bounds %v)", n, got, want, bounds)
			}
		}
	}
}

func TestNEONSafeRefusesZeroAndSubnormalSteps(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, tc := range []struct {
		b    []float32
		safe bool
	}{{[]float32{0.3, -2, inf}, true}, {[]float32{0.3, 0}, false}, {[]float32{1e-40}, false}, {[]float32{-1e-39}, false}} {
		if got := neonSafe([][]float32{tc.b}); got != tc.safe {
			t.Errorf("steps %v: safe %v, want %v", tc.b, got, tc.safe)
		}
	}
}

// The last layer's NEON kernel sums exactly as the Go loop.
func TestDot16IdxNEONEqualsGo(t *testing.T) {
	if !haveNEON {
		t.Skip("no NEON on this machine (the board's kernel runs under scripts/test-arm.sh)")
	}
	rng := rand.New(rand.NewPCG(5, 1))
	w := make([]float32, 16*512)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.05)
	}
	for _, n := range []int{0, 1, 7, 300, 512} {
		idx, val := make([]int32, n), make([]float32, n)
		for i := range idx {
			idx[i] = int32(rng.IntN(512))
			val[i] = float32(1 + rng.IntN(7))
		}
		var got, want [16]float32
		if n > 0 {
			dot16IdxNEON(&w[0], &idx[0], &val[0], n, &got)
		}
		dot16Idx(w, idx, val, &want)
		for o := range got {
			if math.Float32bits(got[o]) != math.Float32bits(want[o]) {
				t.Fatalf("n %d, output %d: NEON %v, Go %v", n, o, got[o], want[o])
			}
		}
	}
}

// On the board the last layer takes the NEON path; its output is the Go path's, bit for
// bit, on engine outputs with zero and nonzero levels.
func TestLastLayerNEONEqualsGo(t *testing.T) {
	if !haveNEON {
		t.Skip("no NEON on this machine (the board's kernel runs under scripts/test-arm.sh)")
	}
	m := loadModel(t)
	ll, err := NewLastLayer(m, 1)
	if err != nil {
		t.Fatal(err)
	}
	in, _ := offload.Pack(randomLevels(512*169, 6), offload.DDRLayout(512, 13))
	neon, err := ll.Run(in, offload.DDRLayout(512, 13))
	if err != nil {
		t.Fatal(err)
	}
	haveNEON = false
	defer func() { haveNEON = true }()
	plain, err := ll.Run(in, offload.DDRLayout(512, 13))
	if err != nil {
		t.Fatal(err)
	}
	for i := range neon {
		if math.Float32bits(neon[i]) != math.Float32bits(plain[i]) {
			t.Fatalf("value %d: NEON %v, Go %v", i, neon[i], plain[i])
		}
	}
}

// The packing kernel gives packRecord's bytes of levels16's levels.
func TestLevels16PackNEONEqualsGo(t *testing.T) {
	if !haveNEON {
		t.Skip("no NEON on this machine (the board's kernel runs under scripts/test-arm.sh)")
	}
	rng := rand.New(rand.NewPCG(8, 8))
	for range 500 {
		n := 1 + rng.IntN(40)
		w, col := randomWindow(rng, n)
		var bounds [7][16]float32
		for o := 0; o < 16; o++ {
			for k := range bounds {
				bounds[k][o] = float32(k-3)*0.3 + float32(rng.NormFloat64()*0.05)
			}
		}
		var words [2]uint32
		levels16PackNEON(&w[0], &col[0], n, &bounds, &recordShifts, &words)
		got := make([]byte, 8)
		putPacked16(got, words)
		var l [16]int32
		levels16(w, col, &bounds, &l)
		lv := make([]uint8, 16)
		for i, v := range l {
			lv[i] = uint8(v)
		}
		want := make([]byte, 8)
		packRecord(want, lv)
		if !bytes.Equal(got, want) {
			t.Fatalf("n %d: packed % x, Go % x (levels %v)", n, got, want, l)
		}
	}
}

// On the board the first layer's records come from the packing kernel; they are the Go
// path's records byte for byte.
func TestFirstLayerRunNEONEqualsGo(t *testing.T) {
	if !haveNEON {
		t.Skip("no NEON on this machine (the board's kernel runs under scripts/test-arm.sh)")
	}
	m := loadModel(t)
	f, err := NewFirstLayer(m, 2)
	if err != nil {
		t.Fatal(err)
	}
	img := randomImage(3*416*416, 9)
	l := f.OutLayout()
	neon, plain := make([]byte, l.Size()), make([]byte, l.Size())
	for i := range neon { // both paths write the same bytes of each record
		neon[i], plain[i] = 0xAA, 0xAA
	}
	if err := f.Run(neon, l, img); err != nil {
		t.Fatal(err)
	}
	haveNEON = false
	defer func() { haveNEON = true }()
	if err := f.Run(plain, l, img); err != nil {
		t.Fatal(err)
	}
	if i := firstDifference(neon, plain); i >= 0 {
		t.Fatalf("records differ at byte %d (record %d)", i, i/l.RecordBytes)
	}
}

func firstDifference(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// randomWindow returns 16 outputs' weights for n inputs and n pixel values in [0,1].
func randomWindow(rng *rand.Rand, n int) (w, col []float32) {
	w, col = make([]float32, 16*n), make([]float32, n)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.3)
	}
	for i := range col {
		col[i] = float32(rng.IntN(256)) / 255
	}
	return w, col
}
