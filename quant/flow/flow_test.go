package flow

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant/onnx"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxbuild"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
)

func TestNames(t *testing.T) {
	if got := DefaultModelName("/x/tinier-yolo-chair_final.cfg"); got != "tinier-yolo-chair" {
		t.Errorf("DefaultModelName = %q", got)
	}
	for in, want := range map[string]string{"d/m.onnx": "d/m-finn.onnx", "d/m-finn.onnx": "d/m-finn.onnx", "d/m-w1a3.onnx": "d/m-finn.onnx"} {
		if got := StepOutputName(in, "-finn"); got != want {
			t.Errorf("StepOutputName(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestDefaultFloatModel(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "chair.onnx"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"chair-w1a3-calibrated.onnx", "chair-w1a3.onnx", "chair-w1.onnx", "chair-finn.onnx", "chair-w1a3-calibrated-streamlined.onnx"} {
		got, err := DefaultFloatModel(filepath.Join(dir, name))
		if err != nil || got != filepath.Join(dir, "chair.onnx") {
			t.Errorf("%s: %q %v", name, got, err)
		}
	}
	if _, err := DefaultFloatModel(filepath.Join(dir, "other.onnx")); err == nil || !strings.Contains(err.Error(), "--float") {
		t.Errorf("underivable name: err %v", err)
	}
}

func TestReadCalibration(t *testing.T) {
	mp := &onnxpb.ModelProto{MetadataProps: []*onnxpb.StringStringEntryProto{
		{Key: onnxbuild.Ptr("pynq.calibration"), Value: onnxbuild.Ptr(`{"method":"percentile","images":20}`)},
		{Key: onnxbuild.Ptr("pynq.qonnx"), Value: onnxbuild.Ptr(`{"stage":"calibrated","calibration":{"percentile":99.99}}`)},
		{Key: onnxbuild.Ptr("other"), Value: onnxbuild.Ptr("x")},
	}}
	p := filepath.Join(t.TempDir(), "m.onnx")
	if err := onnx.WriteFile(p, mp); err != nil {
		t.Fatal(err)
	}
	c := readCalibration(p)
	if m, ok := c["pynq.calibration"].(map[string]any); !ok || m["method"] != "percentile" || c["pynq.qonnx.calibration"] == nil || len(c) != 2 {
		t.Errorf("calibration %v", c)
	}
	// quant calibrate's entry alone is the calibration itself.
	mp.MetadataProps = mp.MetadataProps[:1]
	if err := onnx.WriteFile(p, mp); err != nil {
		t.Fatal(err)
	}
	c = readCalibration(p)
	if c["method"] != "percentile" || c["images"] != 20.0 {
		t.Errorf("pynq.calibration alone: %v", c)
	}
	if got := (&VerifyResult{Calibration: c}).Advice()[0]; !strings.Contains(got, "calibrated on 20") {
		t.Errorf("advice: %s", got)
	}
}

// The QAT gate fails when QAT still drops more than the limit; the report names the
// QAT model's AP per class.
func TestQATReportGate(t *testing.T) {
	ptq := &VerifyResult{MaxDrop: 5, MAP: VerifyPair{Float: .5, Quantized: .1}, Drop: VerifyDrop{Points: 40},
		Classes: []VerifyClass{{Class: "chair", FloatAP: .5, QuantizedAP: .1}}}
	for _, tc := range []struct {
		qat  float64
		pass bool
	}{{.47, true}, {.4, false}} {
		qat := &VerifyResult{MAP: VerifyPair{Float: .3, Quantized: tc.qat}, Classes: []VerifyClass{{Class: "chair", QuantizedAP: tc.qat}}}
		r := newQATReport("m", ptq, qat, &QATTraining{})
		dir := t.TempDir()
		if err := r.write(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "qat_report.html")); err != nil {
			t.Error(err)
		}
		if gate := r.GateError(); (gate == nil) != tc.pass || r.Passed.QAT != tc.pass || r.Classes[0].QATAP != tc.qat {
			t.Errorf("QAT mAP %g: gate %v, class AP %g; want pass %v", tc.qat, gate, r.Classes[0].QATAP, tc.pass)
		}
	}
}
