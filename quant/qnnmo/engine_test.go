package qnnmo

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// refHidden computes the model's engine layers straight from the IR in image order and
// orientation (darknet semantics), on integer levels.
func refHidden(tb testing.TB, m *quant.Model, in []uint8) []uint8 {
	tb.Helper()
	first, last, err := offload.EngineLayers(m)
	if err != nil {
		tb.Fatal(err)
	}
	x := in
	for i := first; i <= last; i++ {
		l := m.Layers[i]
		switch l.Kind {
		case quant.KindConv:
			x = refConv(l, x)
		case quant.KindMaxPool:
			x = refPool(l, x)
		}
	}
	return x
}

func refConv(l *quant.Layer, in []uint8) []uint8 {
	c, q := l.Conv, l.Quant
	H, W, k := l.In.H, l.In.W, c.Size
	out := make([]uint8, l.Out.Size())
	for o := 0; o < c.Filters; o++ {
		for y := 0; y < l.Out.H; y++ {
			for x := 0; x < l.Out.W; x++ {
				acc := 0
				for ch := 0; ch < l.In.C; ch++ {
					for ky := 0; ky < k; ky++ {
						for kx := 0; kx < k; kx++ {
							yy, xx := y+ky-c.Pad, x+kx-c.Pad
							if yy < 0 || yy >= H || xx < 0 || xx >= W {
								continue
							}
							acc += int(c.Weights[((o*l.In.C+ch)*k+ky)*k+kx]) * int(in[(ch*H+yy)*W+xx])
						}
					}
				}
				n := uint8(0)
				for _, t := range q.Thresholds[o] {
					if int32(acc) >= t {
						n++
					}
				}
				if q.Invert[o] {
					n = 7 - n
				}
				out[(o*l.Out.H+y)*l.Out.W+x] = n
			}
		}
	}
	return out
}

func refPool(l *quant.Layer, in []uint8) []uint8 {
	p := l.Pool
	out := make([]uint8, l.Out.Size())
	for ch := 0; ch < l.Out.C; ch++ {
		for y := 0; y < l.Out.H; y++ {
			for x := 0; x < l.Out.W; x++ {
				var m uint8
				for dy := 0; dy < p.Size; dy++ {
					for dx := 0; dx < p.Size; dx++ {
						yy, xx := y*p.Stride+dy, x*p.Stride+dx
						if yy < l.In.H && xx < l.In.W {
							m = max(m, in[(ch*l.In.H+yy)*l.In.W+xx])
						}
					}
				}
				out[(ch*l.Out.H+y)*l.Out.W+x] = m
			}
		}
	}
	return out
}

// syntheticModel builds a small random W1A3 model that exercises a 16-channel input,
// both pool kinds, a layer split into two parts and inverted channels.
func syntheticModel(tb testing.TB, seed uint64) *quant.Model {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	m := &quant.Model{Name: "synthetic", Input: quant.Shape{C: 16, H: 12, W: 12}}
	conv := func(in, out int, shuffled bool) *quant.Layer {
		l := &quant.Layer{Kind: quant.KindConv, Name: "conv", Inputs: []int{len(m.Layers) - 1},
			Conv:  &quant.Conv{Filters: out, Size: 3, Stride: 1, Pad: 1, Groups: 1, Activation: quant.ActReLU, Binary: true},
			Quant: &quant.LayerQuant{WeightBits: 1, ActBits: 3, ActScale: 1}}
		l.Conv.Weights = make([]float32, out*in*9)
		for i := range l.Conv.Weights {
			l.Conv.Weights[i] = float32(1 - 2*rng.IntN(2))
		}
		spread := 3 * in // typical accumulator spread for random weights and levels
		for o := 0; o < out; o++ {
			base := rng.IntN(2*spread) - spread
			t := make([]int32, 7)
			for i := range t {
				base += rng.IntN(spread / 2)
				t[i] = int32(base)
			}
			if shuffled && o%3 == 0 { // unsorted thresholds take the engine's general path
				rng.Shuffle(len(t), func(i, j int) { t[i], t[j] = t[j], t[i] })
			}
			l.Quant.Thresholds = append(l.Quant.Thresholds, t)
			l.Quant.Invert = append(l.Quant.Invert, rng.IntN(5) == 0)
		}
		m.Layers = append(m.Layers, l)
		return l
	}
	pool := func(stride, pad int) {
		m.Layers = append(m.Layers, &quant.Layer{Kind: quant.KindMaxPool, Name: "pool", Inputs: []int{len(m.Layers) - 1},
			Pool: &quant.Pool{Size: 2, Stride: stride, Pad: pad}})
	}
	conv(16, 64, false)
	pool(2, 1)
	conv(64, 320, true) // two parts of 160
	pool(1, 1)
	conv(320, 96, false)
	if err := m.InferShapes(); err != nil {
		tb.Fatal(err)
	}
	return m
}

func randomLevels(n int, seed uint64) []uint8 {
	rng := rand.New(rand.NewPCG(seed, 2))
	v := make([]uint8, n)
	for i := range v {
		v[i] = uint8(rng.IntN(8))
	}
	return v
}

func TestEngineMatchesIRReference(t *testing.T) {
	for _, threads := range []int{1, 3} {
		m := syntheticModel(t, 7)
		e, err := NewEngine(m, offload.W1A3, threads)
		if err != nil {
			t.Fatal(err)
		}
		in := randomLevels(m.Input.Size(), 3)
		packed, err := offload.Pack(in, offload.DDRLayout(16, 12))
		if err != nil {
			t.Fatal(err)
		}
		out, err := e.Run(packed)
		if err != nil {
			t.Fatal(err)
		}
		ol := e.OutLayout()
		if ol != offload.DDRLayout(96, 6) || len(out) != ol.Size() {
			t.Fatalf("output layout %+v, %d bytes", ol, len(out))
		}
		got, err := offload.Unpack(out, ol)
		if err != nil {
			t.Fatal(err)
		}
		want := refHidden(t, m, in)
		diff := 0
		for i := range want {
			if got[i] != want[i] {
				diff++
			}
		}
		if diff != 0 {
			t.Errorf("threads %d: %d of %d levels differ from the IR reference", threads, diff, len(want))
		}
		// Record bits past the 96 channels are zero.
		for p := 0; p < ol.Pixels(); p++ {
			for _, b := range out[p*192+36 : (p+1)*192] {
				if b != 0 {
					t.Fatalf("pixel %d has bits past its channels", p)
				}
			}
		}
		trace, err := e.RunTrace(packed)
		if err != nil || len(trace) != 3 || !bytes.Equal(trace[2], out) || len(trace[0]) != 6*6*192 {
			t.Errorf("RunTrace: %d layers, %v", len(trace), err)
		}
		// A compact input gives the same output.
		compact, _ := offload.Pack(in, offload.CompactLayout(16, 12))
		out2, err := e.Run(compact)
		if err != nil || !bytes.Equal(out, out2) {
			t.Errorf("compact input: %v, equal %v", err, bytes.Equal(out, out2))
		}
	}
}

// TestEngineReadsPaddingLanes: like the hardware, the engine multiplies whatever sits in
// the record bits past the input channels by the padding lanes' weights (+1).
func TestEngineReadsPaddingLanes(t *testing.T) {
	m := syntheticModel(t, 9)
	e, err := NewEngine(m, offload.W1A3, 1)
	if err != nil {
		t.Fatal(err)
	}
	in := randomLevels(m.Input.Size(), 4)
	clean, _ := offload.Pack(in, offload.DDRLayout(16, 12))
	dirty := bytes.Clone(clean)
	for p := 0; p < 144; p++ {
		dirty[p*192+10] = 0xff // channels 26..29
	}
	a, _ := e.Run(clean)
	b, _ := e.Run(dirty)
	if bytes.Equal(a, b) {
		t.Error("junk in padding lanes changed nothing; the engine should read 64 lanes")
	}
	// ...and that equals a 64-channel input whose extra channels hold the junk.
	wide := make([]uint8, 64*144)
	copy(wide, in)
	for p := 0; p < 144; p++ {
		y, x := p%12, p/12 // record p is image pixel x = p/12, y = p%12
		rec := dirty[p*192:]
		for c := 16; c < 64; c++ {
			wide[(c*12+y)*12+x] = offload.RecordLevel(rec, c)
		}
	}
	wpacked, _ := offload.Pack(wide, offload.DDRLayout(64, 12))
	c, _ := e.Run(wpacked)
	if !bytes.Equal(b, c) {
		t.Error("padding lanes are not read as channels 16..63")
	}
}

func TestMaxPlanes(t *testing.T) {
	for a := 0; a < 8; a++ {
		for b := 0; b < 8; b++ {
			x := []uint64{uint64(a & 1), uint64(a >> 1 & 1), uint64(a >> 2)}
			y := []uint64{uint64(b & 1), uint64(b >> 1 & 1), uint64(b >> 2)}
			maxPlanes(x, y)
			if got := int(x[0] | x[1]<<1 | x[2]<<2); got != max(a, b) {
				t.Errorf("max(%d,%d) = %d", a, b, got)
			}
		}
	}
}

func TestPlanesRecordsRoundTrip(t *testing.T) {
	levels := randomLevels(192*5, 11)
	rec := make([]byte, 5*192)
	for p := 0; p < 5; p++ {
		for c := 0; c < 192; c++ {
			offload.SetRecordLevel(rec[p*192:], c, levels[p*192+c])
		}
	}
	// 192 channels = 3 groups; bytes 72.. of each record stay zero.
	planes := recordsToPlanes(rec, 192, 5, 3)
	for p := 0; p < 5; p++ {
		for c := 0; c < 192; c++ {
			q, b := c/64, c%64
			v := planes[3*(p*3+q)]>>b&1 | (planes[3*(p*3+q)+1]>>b&1)<<1 | (planes[3*(p*3+q)+2]>>b&1)<<2
			if uint8(v) != levels[p*192+c] {
				t.Fatalf("pixel %d channel %d: plane level %d, record level %d", p, c, v, levels[p*192+c])
			}
		}
	}
	back := make([]byte, len(rec))
	planesToRecords(back, 192, planes, 5, 3)
	if !bytes.Equal(back, rec) {
		t.Error("planes -> records does not restore the records")
	}
}

func BenchmarkEngine(b *testing.B) {
	m := loadModel(b)
	for _, threads := range []int{1, 2} {
		b.Run(map[int]string{1: "threads=1", 2: "threads=2"}[threads], func(b *testing.B) {
			e, err := NewEngine(m, offload.W1A3, threads)
			if err != nil {
				b.Fatal(err)
			}
			in, _ := offload.Pack(randomLevels(16*208*208, 5), offload.DDRLayout(16, 208))
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := e.Run(in); err != nil {
					b.Fatal(err)
				}
			}
			// Other processes share this machine: CPU time per frame tells the cost,
			// wall time the throughput under the current load.
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
			b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/float64(b.N), "cpu-ms/frame")
		})
	}
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestRecordsToPlanesKernels: the PEXT conversion (where the CPU has it) equals the
// table one for whole, short and long records of one to three groups.
func TestRecordsToPlanesKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, c := range []struct{ stride, g int }{{24, 1}, {192, 1}, {192, 3}, {30, 2}, {50, 3}, {10, 1}} {
		const pixels = 37
		buf := make([]byte, pixels*c.stride)
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		want := make([]uint64, 3*pixels*c.g)
		recordsToPlanesTable(want, buf, c.stride, c.g, 0, 0, pixels)
		got := make([]uint64, len(want))
		recordsToPlanesRange(got, buf, c.stride, c.g, 0, 5)
		recordsToPlanesRange(got, buf, c.stride, c.g, 5, pixels)
		if !slices.Equal(got, want) {
			t.Errorf("stride %d, %d groups: planes differ from the table conversion", c.stride, c.g)
		}
	}
}

// TestEngineConcurrentRuns: runs sharing one engine (and its pooled scratch planes) from
// several goroutines give the outputs of sequential runs, on inputs of both kinds of
// first layer path (clean and junk padding lanes).
func TestEngineConcurrentRuns(t *testing.T) {
	m := widthModel(t, 7, 10, 16, 64, 96, 64)
	e, err := NewEngine(m, offload.W1A3, 2)
	if err != nil {
		t.Fatal(err)
	}
	var ins, want [][]byte
	for i := range 4 {
		in, _ := offload.Pack(randomLevels(m.Input.Size(), uint64(20+i)), offload.DDRLayout(16, 10))
		if i%2 == 1 {
			for p := 0; p < 100; p++ {
				in[p*192+7] |= byte(i) // junk in channels 18..20
			}
		}
		out, err := e.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		ins, want = append(ins, in), append(want, out)
	}
	var wg sync.WaitGroup
	got := make([][][]byte, 8)
	for g := range got {
		wg.Go(func() {
			for r := range 6 {
				out, _ := e.Run(ins[(g+r)%4])
				got[g] = append(got[g], out)
			}
		})
	}
	wg.Wait()
	for g := range got {
		for r, out := range got[g] {
			if !bytes.Equal(out, want[(g+r)%4]) {
				t.Errorf("goroutine %d run %d: output differs from the sequential run", g, r)
			}
		}
	}
}
