package detector

import (
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
)

func TestLoadQNNDir(t *testing.T) {
	l, err := Load(Spec{Dir: testutil.Fixture(t, "qnn-mo-pynq", "params"), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if l.Decoder != qnnmo.ImageDecoder || l.Model.Classes() != 20 {
		t.Errorf("decoder %v, %d classes; want stb_image and VOC's 20", l.Decoder, l.Model.Classes())
	}
	if err := l.CheckNames("chair.names", 1); err == nil || !strings.Contains(err.Error(), "chair.names has 1 names, the model has 20 classes") {
		t.Errorf("one name for 20 classes: %v", err)
	}
	if err := l.CheckNames("voc.names", 20); err != nil {
		t.Error(err)
	}
}
