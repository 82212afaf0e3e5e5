package qonnx_test

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
	"github.com/fpgadetector/pynq-agent/quant/quantengine"
)

// FuzzRead feeds the QONNX reader real files of the small model and its lhtan variant
// (calibrated and streamlined) and broken variants; it must return an error or a model that qengine
// accepts or refuses, never panic.
func FuzzRead(f *testing.F) {
	for _, cfg := range []string{smallCfg, lhtanCfg} {
		seedRead(f, smallModelCfg(f, cfg))
	}
	f.Add([]byte{})
	f.Add([]byte("not a model"))
	f.Fuzz(fuzzRead)
}

// seedRead adds m's calibrated and streamlined files (and broken variants) as seeds.
func seedRead(f *testing.F, m *quant.Model) {
	if _, err := qonnx.QuantizeWeights(m, qonnx.WeightOptions{Bits: 1, KeepFirst: true, KeepLast: true}); err != nil {
		f.Fatal(err)
	}
	if _, err := qonnx.QuantizeActivations(m, qonnx.ActOptions{Bits: 3, Leaky: "relu"}); err != nil {
		f.Fatal(err)
	}
	if _, err := qonnx.SetThresholds(m); err != nil {
		f.Fatal(err)
	}
	for _, st := range []bool{false, true} {
		mp, err := qonnx.Build(m, qonnx.Options{Streamlined: st})
		if err != nil {
			f.Fatal(err)
		}
		// Small seeds: drop the big initializers' data, keep the structure.
		for _, t := range mp.GetGraph().GetInitializer() {
			if len(t.RawData) > 64 {
				t.RawData = t.RawData[:64]
			}
		}
		data, err := proto.Marshal(mp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
		f.Add(bytes.Replace(data, []byte(`"filters":16`), []byte(`"filters":-1`), 1))
		f.Add(bytes.Replace(data, []byte(`"inputs":[-1]`), []byte(`"inputs":[5]`), 1))
	}
}

func fuzzRead(t *testing.T, data []byte) {
	mp := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, mp); err != nil {
		return
	}
	m, err := qonnx.Read(mp)
	if err != nil {
		return
	}
	if m.Input.Size() > 1<<16 {
		return // a large input would only be slow to run
	}
	for _, l := range m.Layers {
		if l.Out.Size() > 1<<20 {
			return
		}
	}
	if _, err := quantengine.New(m, quantengine.Options{}); err != nil {
		return
	}
}

// FuzzOverrides parses weight-override TOML files.
func FuzzOverrides(f *testing.F) {
	f.Add([]byte("keep_first = true\nkeep_last = false\nkeep_bits = 8\n[layers]\nconv0 = 8\nconv13 = 0\n"))
	f.Add([]byte("keep_bits = 9\n"))
	f.Add([]byte("[layers]\nconv0 = \"x\"\n"))
	f.Add([]byte("unknown = 1\n"))
	f.Add([]byte("[layers\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var opt qonnx.WeightOptions
		if err := qonnx.ParseOverrides(data, "fuzz.toml", &opt); err != nil {
			return
		}
		if opt.KeepBits < 0 || opt.KeepBits > 8 {
			t.Fatalf("accepted keep_bits %d", opt.KeepBits)
		}
		for k, b := range opt.Overrides {
			if b < 0 || b > 8 {
				t.Fatalf("accepted layer %s = %d", k, b)
			}
		}
	})
}
