package qnnmo

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

func TestThresholdEntry(t *testing.T) {
	th := []int32{-32768, -5, 0, 7, 300, 32767, -1}
	hi, lo, err := offload.ThresholdEntry(th, true)
	if err != nil {
		t.Fatal(err)
	}
	// T0..T3 in the low word, T4..T6 and the invert flag (bit 112) in the high word.
	if lo != 0x0007_0000_fffb_8000 || hi != 0x0001_ffff_7fff_012c {
		t.Errorf("entry hi %#016x lo %#016x", hi, lo)
	}
	back, inv, err := offload.ParseThresholdEntry(hi, lo)
	if err != nil || !inv || !equalInt32(back, th) {
		t.Errorf("parse = %v %v %v", back, inv, err)
	}
	if _, _, err := offload.ThresholdEntry([]int32{0, 0, 0, 0, 0, 0, 40000}, false); err == nil {
		t.Error("threshold 40000 fitted int16")
	}
	if _, _, err := offload.ThresholdEntry([]int32{1, 2}, false); err == nil {
		t.Error("2 thresholds accepted")
	}
	if _, _, err := offload.ParseThresholdEntry(1<<50, 0); err == nil {
		t.Error("bit 114 accepted")
	}
}

func TestSetWeightWordsRefusesPaddingBits(t *testing.T) {
	l := &quant.Layer{In: quant.Shape{C: 16, H: 4, W: 4}, Conv: &quant.Conv{Filters: 1, Size: 1}}
	if err := offload.SetWeightWords(l, []uint64{1 << 20}); err == nil {
		t.Error("a weight on padding lane 20 of a 16-channel layer was accepted")
	}
	if err := offload.SetWeightWords(l, []uint64{0x8001}); err != nil {
		t.Fatal(err)
	}
	if l.Conv.Weights[0] != -1 || l.Conv.Weights[15] != -1 || l.Conv.Weights[1] != 1 {
		t.Errorf("weights %v", l.Conv.Weights)
	}
	if got := offload.WeightWords(l); len(got) != 1 || got[0] != 0x8001 {
		t.Errorf("weightWords = %#x", got)
	}
}

// TestLayerBuffersLayout checks the DDR weight buffers against the published files:
// PE q of channel ch at word q*576, thresholds from word 16*576, zero elsewhere.
func TestLayerBuffersLayout(t *testing.T) {
	m := loadModel(t)
	runs, err := offload.Plan(m, offload.W1A3)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(paramsDir(t), "binparam-tinier-yolo-nopool")
	for _, ri := range []int{0, 5, 9} { // conv1, conv5 part 1, conv7 part 1
		r := runs[ri]
		w1, w2, err := offload.LayerBuffers(m, r, offload.W1A3)
		if err != nil {
			t.Fatal(err)
		}
		for ch, buf := range [][]byte{w1, w2} {
			if len(buf) != 75776 {
				t.Fatalf("run %d buffer %d: %d bytes, want 75776", ri, ch, len(buf))
			}
			want := make([]byte, len(buf))
			for q := 0; q < 16; q++ {
				pe := 16*ch + q
				w, err := os.ReadFile(filepath.Join(dir, binparamFile(r.WeightIndex, pe, "weights")))
				if err != nil {
					t.Fatal(err)
				}
				th, err := os.ReadFile(filepath.Join(dir, binparamFile(r.WeightIndex, pe, "thres")))
				if err != nil {
					t.Fatal(err)
				}
				copy(want[8*q*576:], w)
				copy(want[8*(16*576+q*16):], th)
			}
			if !bytes.Equal(buf, want) {
				t.Errorf("run %d buffer %d differs from the published files' layout", ri, ch)
			}
		}
	}
	// conv1: PE 0's first threshold entry, high word first.
	w1, _, _ := offload.LayerBuffers(m, runs[0], offload.W1A3)
	hi := binary.LittleEndian.Uint64(w1[8*16*576:])
	lo := binary.LittleEndian.Uint64(w1[8*(16*576+1):])
	if th, _, _ := offload.ParseThresholdEntry(hi, lo); !equalInt32(th, []int32{40, 47, 54, 60, 67, 74, 81}) {
		t.Errorf("conv1 PE 0 entry 0 = %v", th)
	}
}

func binparamFile(weightIndex, pe int, kind string) string {
	return filepath.Base(binparamName("", weightIndex, pe, kind))
}

func TestReadBinparamsErrors(t *testing.T) {
	m := loadModel(t)
	dir := t.TempDir()
	if err := WriteBinparams(m, dir, offload.W1A3); err != nil {
		t.Fatal(err)
	}
	// Truncate one file: loading names the file and the expected size.
	name := filepath.Join(dir, "3-7-weights.bin")
	if err := os.WriteFile(name, []byte{1, 2, 3}, 0o644); err != nil {
		t.Fatal(err)
	}
	m2, err := LoadDir(paramsDir(t))
	if err != nil {
		t.Fatal(err)
	}
	err = readBinparams(m2, dir, offload.W1A3)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("3-7-weights.bin")) {
		t.Errorf("truncated file: %v", err)
	}
}
