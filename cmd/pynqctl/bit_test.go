package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/bitstream"
	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

func TestBitInfoJSON(t *testing.T) {
	path := testutil.Fixture(t, "qnn-mo-pynq", "bitstream", "W1A3-pynqZ1-Z2.bit")
	out, err := runPynqctl(t, "bit", "info", "--json", path)
	if err != nil {
		t.Fatal(err)
	}
	var info bitstream.Info
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if info.Design != "procsys_wrapper" || info.Part != "7z020clg400" || !info.PartIsPYNQZ2 ||
		info.PayloadBytes != 4045564 || len(info.FileSHA256) != 64 || info.FileSHA256 == info.PayloadSHA256 {
		t.Errorf("info %+v", info)
	}
	text, err := runPynqctl(t, "bit", "info", path)
	if err != nil || !strings.Contains(text, "7z020clg400 (PYNQ-Z2)") || !strings.Contains(text, info.PayloadSHA256) {
		t.Errorf("text output %q, %v", text, err)
	}
}

func TestBitToBin(t *testing.T) {
	path := testutil.Fixture(t, "qnn-mo-pynq", "bitstream", "W1A3-pynqZ1-Z2.bit")
	out := filepath.Join(t.TempDir(), "w1a3.bin")
	if _, err := runPynqctl(t, "bit", "tobin", path, "-o", out); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(bin) != 4045564 || bitstream.FindSyncWord(bin) != 48 {
		t.Errorf(".bin of %d bytes, sync word at %d", len(bin), bitstream.FindSyncWord(bin))
	}
}

func TestBitToBinRefusesOtherPart(t *testing.T) {
	dir := t.TempDir()
	bit := filepath.Join(dir, "z1.bit")
	if err := os.WriteFile(bit, otherPartBit(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "z1.bin")
	_, err := runPynqctl(t, "bit", "tobin", bit, "-o", out)
	if !errors.Is(err, bitstream.ErrWrongPart) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("tobin: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("refused conversion left an output file")
	}
	if _, err := runPynqctl(t, "bit", "tobin", bit, "-o", out, "--force"); err != nil {
		t.Errorf("forced: %v", err)
	}
}

// otherPartBit is a minimal .bit for a 7z010 with a valid sync word.
func otherPartBit() []byte {
	b := []byte{0, 9, 0x0f, 0xf0, 0x0f, 0xf0, 0x0f, 0xf0, 0x0f, 0xf0, 0, 0, 1}
	for i, s := range []string{"x", "7z010clg400", "d", "t"} {
		b = append(b, "abcd"[i], 0, byte(len(s)+1))
		b = append(append(b, s...), 0)
	}
	payload := []byte{0xff, 0xff, 0xff, 0xff, 0xaa, 0x99, 0x55, 0x66}
	return append(append(b, 'e', 0, 0, 0, byte(len(payload))), payload...)
}
