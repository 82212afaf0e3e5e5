package darknet_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant/darknet"
)

func BenchmarkParseCfgYoloFastest(b *testing.B) {
	cfg, _ := yoloFastest(b)
	text, err := os.ReadFile(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := darknet.ParseCfg(bytes.NewReader(text), cfg, darknet.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadYoloFastest(b *testing.B) {
	cfg, weights := yoloFastest(b)
	st, err := os.Stat(weights)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	for b.Loop() {
		if _, err := darknet.Load(cfg, weights, darknet.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
