package todarknet

import (
	"bytes"
	"math"
	"testing"
)

func FuzzParseSidecar(f *testing.F) {
	res, err := Export(smallModel(f))
	if err != nil {
		f.Fatal(err)
	}
	real, err := res.Sidecar.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add(real[:len(real)/2])
	f.Add([]byte(`{"format":"pynq-agent/quant-sidecar/v1","layers":[{"index":1,"weight_bits":1,"act_bits":3,"act_scale":1,"thresholds":true}]}`))
	f.Add([]byte(`{"format":"pynq-agent/quant-sidecar/v1","layers":[{"index":-1,"weight_bits":2,"act_bits":99,"act_scale":-1}]}`))
	f.Add([]byte(`{"format":"other","layers":[]}`))
	f.Add([]byte(`{"format":"pynq-agent/quant-sidecar/v1","layers":[{"index":0},{"index":0}]}`))
	f.Add([]byte(`[1, 2`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := ParseSidecar(data, "fuzz")
		if err != nil {
			return
		}
		// A sidecar that parses applies to the model or fails cleanly.
		m := smallModel(t)
		_ = Requantize(m, sc)
		again, err := sc.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseSidecar(again, "again"); err != nil {
			t.Fatalf("re-encoded sidecar does not parse: %v", err)
		}
	})
}

// FuzzFitChannel: any thresholds fit without panicking, and every fit the function
// calls exact or constant derives back to the same levels.
func FuzzFitChannel(f *testing.F) {
	f.Add(int32(-30), int32(10), int32(0), int32(0), int32(0), false, int64(1000), 1.0)
	f.Add(int32(40), int32(7), int32(3), int32(-1), int32(2), true, int64(1008), 0.5714)
	f.Add(int32(-999), int32(0), int32(0), int32(2000), int32(0), false, int64(100), 1.0)
	f.Fuzz(func(t *testing.T, t0, step, j1, j2, j3 int32, invert bool, reach int64, s float64) {
		if reach < 0 || reach > 1<<20 || !(s > 1e-3 && s < 1e3) {
			return
		}
		th := make([]int32, 7)
		for k := range th {
			v := int64(t0) + int64(k)*int64(step) + int64([]int32{j1, j2, j3}[k%3]%3)
			th[k] = int32(max(math.MinInt32, min(math.MaxInt32, v)))
		}
		fit, err := FitChannel(th, invert, s, reach)
		if err != nil {
			t.Fatal(err)
		}
		got, inv := lineThresholds(fit.A, fit.B, s, 7, reach)
		if same := SameLevels(th, invert, got, inv, reach); fit.Kind != FitApprox && !same {
			t.Fatalf("%v invert %v reach %d: %v fit A=%g B=%g margin %g derives %v invert %v", th, invert, reach, fit.Kind, fit.A, fit.B, fit.Margin, got, inv)
		}
	})
}

// FuzzFitLine: thresholds a batch norm gives (rounded points of one line) always fit
// exactly (or as a constant channel), unless a crossing falls on an integer acc.
func FuzzFitLine(f *testing.F) {
	f.Add(0.1, 3.0, 1.0, int64(1008))
	f.Add(-2.5, -40.0, 0.5714, int64(32256))
	f.Add(1e-4, 0.3, 1.0, int64(100))
	f.Fuzz(func(t *testing.T, A, B, s float64, reach int64) {
		if reach < 0 || reach > 1<<16 || !(s > 1e-3 && s < 1e3) || !(math.Abs(A) > 1e-6 && math.Abs(A) < 1e6) || !(math.Abs(B) < 1e9) {
			return
		}
		for k := 1; k <= 7; k++ {
			// A crossing on an integer acc sits on the edge of two threshold values and
			// rounding picks either: such lines are representable only with zero margin.
			u := ((float64(k)-0.5)*s - B) / A
			if math.Abs(u-math.Round(u)) < 1e-6*max(1, math.Abs(u)) {
				return
			}
		}
		th, invert := lineThresholds(A, B, s, 7, reach)
		fit, err := FitChannel(th, invert, s, reach)
		if err != nil {
			t.Fatal(err)
		}
		if fit.Kind == FitApprox {
			t.Fatalf("line A=%g B=%g s=%g gives %v invert %v, fitted only approximately (margin %g)", A, B, s, th, invert, fit.Margin)
		}
		got, inv := lineThresholds(fit.A, fit.B, s, 7, reach)
		if !SameLevels(th, invert, got, inv, reach) {
			t.Fatalf("line A=%g B=%g: %v invert %v, fit A=%g B=%g derives %v invert %v", A, B, th, invert, fit.A, fit.B, got, inv)
		}
	})
}

func FuzzMergeTrainingKeys(f *testing.F) {
	cfg := "[net]\nbatch=1\n\n# 0\n[convolutional]\nfilters=4\n[region]\nclasses=2\n[yolo]\nmask=0\n"
	f.Add([]byte(cfg), []byte("[net]\nlearning_rate=0.1\n[region]\njitter=.2\n[yolo]\nignore_thresh=.7\n[yolo]\nx=1\n"))
	f.Add([]byte(cfg), []byte("[net\nkey\n"))
	f.Add([]byte("no sections\n=\n[]\n"), []byte("[network]\n;c\n#d\n a = b \n"))
	f.Fuzz(func(t *testing.T, cfg, tmpl []byte) {
		out, added, err := MergeTrainingKeys(cfg, tmpl)
		if err != nil {
			return
		}
		// Lines are kept (CRLF line ends become LF).
		if len(out) < len(bytes.TrimRight(bytes.ReplaceAll(cfg, []byte("\r"), nil), "\n")) {
			t.Fatalf("merged cfg is shorter than the input")
		}
		// Merging again adds nothing.
		if _, again, err := MergeTrainingKeys(out, tmpl); err != nil || len(again) != 0 {
			t.Fatalf("second merge: %v, added %v then %v", err, added, again)
		}
	})
}
