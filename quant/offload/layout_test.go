package offload

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestPackBitPositions(t *testing.T) {
	// 2 channels on a 2x2 map, CHW in image order.
	levels := []uint8{
		5, 1, // channel 0, row y=0: x=0, x=1
		0, 2, // row y=1
		7, 3, // channel 1
		0, 4,
	}
	buf, err := Pack(levels, Layout{Channels: 2, Dim: 2, RecordBytes: 8})
	if err != nil {
		t.Fatal(err)
	}
	// Record index = x*dim + y: record 0 = (y0,x0), 1 = (y1,x0), 2 = (y0,x1), 3 = (y1,x1).
	// Channel c at bits 3c..3c+2, LSB first: (5, 7) -> 0b111_101.
	want := []byte{
		0x3d, 0, 0, 0, 0, 0, 0, 0,
		0x00, 0, 0, 0, 0, 0, 0, 0,
		1 | 3<<3, 0, 0, 0, 0, 0, 0, 0,
		2 | 4<<3, 0, 0, 0, 0, 0, 0, 0,
	}
	if !bytes.Equal(buf, want) {
		t.Errorf("packed % x\nwant   % x", buf, want)
	}
	// A level straddling a byte: channel 2 sits at bits 6..8.
	l := Layout{Channels: 3, Dim: 1, RecordBytes: 2}
	b, _ := Pack([]uint8{0, 0, 7}, l)
	if !bytes.Equal(b, []byte{0xc0, 0x01}) {
		t.Errorf("channel 2 = 7 packs to % x, want c0 01", b)
	}
}

func TestPackUnpackRoundTrip(t *testing.T) {
	for _, l := range []Layout{DDRLayout(16, 208), CompactLayout(16, 7), DDRLayout(512, 13), CompactLayout(125, 3), {Channels: 21, Dim: 4, RecordBytes: 8}} {
		levels := randomLevels(l.Channels*l.Pixels(), uint64(l.Channels))
		buf, err := Pack(levels, l)
		if err != nil {
			t.Fatal(err)
		}
		if len(buf) != l.Size() {
			t.Fatalf("%+v: %d bytes, want %d", l, len(buf), l.Size())
		}
		back, err := Unpack(buf, l)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, levels) {
			t.Errorf("%+v: unpack(pack(x)) != x", l)
		}
	}
	if DDRLayout(16, 1).RecordBytes != 192 || CompactLayout(16, 1).RecordBytes != 6 || CompactLayout(512, 1).RecordBytes != 192 {
		t.Error("record sizes: DDR 192, compact ceil(3C/8)")
	}
}

func TestPackErrors(t *testing.T) {
	if _, err := Pack([]uint8{8}, Layout{Channels: 1, Dim: 1, RecordBytes: 1}); err == nil {
		t.Error("level 8 packed")
	}
	if _, err := Pack(make([]uint8, 3), Layout{Channels: 1, Dim: 2, RecordBytes: 1}); err == nil {
		t.Error("wrong level count packed")
	}
	if _, err := Pack(make([]uint8, 3), Layout{Channels: 3, Dim: 1, RecordBytes: 1}); err == nil {
		t.Error("9 bits packed into 1 byte")
	}
	if _, err := Unpack(make([]byte, 5), DDRLayout(16, 1)); err == nil {
		t.Error("short buffer unpacked")
	}
	if _, err := LayoutForSize(16, 208, 208*208*6+1); err == nil {
		t.Error("ragged buffer accepted")
	}
	if l, err := LayoutForSize(16, 208, 208*208*6); err != nil || l != CompactLayout(16, 208) {
		t.Errorf("LayoutForSize = %+v, %v", l, err)
	}
}

// TestConcatParts: two 256-channel part outputs concatenate to the 512-channel record.
func TestConcatParts(t *testing.T) {
	l := DDRLayout(512, 13)
	levels := randomLevels(512*169, 21)
	full, _ := Pack(levels, l)
	dst := make([]byte, l.Size())
	parts, per := Parts(512, W1A3)
	if parts != 2 || per != 256 {
		t.Fatalf("Parts(512) = %d x %d, want 2 x 256", parts, per)
	}
	for p := 0; p < parts; p++ {
		part, _ := Pack(levels[p*per*169:(p+1)*per*169], DDRLayout(per, 13))
		if err := Concat(dst, part, l, p, per); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(dst, full) {
		t.Error("concatenated parts differ from the packed layer")
	}
	// Odd bit offsets go through the bitwise path.
	l3 := Layout{Channels: 6, Dim: 2, RecordBytes: 3}
	lv := randomLevels(6*4, 5)
	want, _ := Pack(lv, l3)
	got := make([]byte, l3.Size())
	for p := 0; p < 2; p++ {
		part, _ := Pack(lv[p*3*4:(p+1)*3*4], Layout{Channels: 3, Dim: 2, RecordBytes: 3})
		if err := Concat(got, part, l3, p, 3); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("3-channel parts: % x, want % x", got, want)
	}
	if err := Concat(dst, dst, l, 2, 256); err == nil {
		t.Error("a third part of 256 channels fitted a 192-byte record")
	}
	if p, per := Parts(64, W1A3); p != 1 || per != 64 {
		t.Errorf("Parts(64) = %d x %d", p, per)
	}
}

func TestRepack(t *testing.T) {
	levels := randomLevels(16*25, 8)
	compact, _ := Pack(levels, CompactLayout(16, 5))
	ddr, _ := Pack(levels, DDRLayout(16, 5))
	got, err := Repack(compact, CompactLayout(16, 5), DDRLayout(16, 5))
	if err != nil || !bytes.Equal(got, ddr) {
		t.Errorf("compact -> DDR: %v, equal %v", err, bytes.Equal(got, ddr))
	}
	back, err := Repack(ddr, DDRLayout(16, 5), CompactLayout(16, 5))
	if err != nil || !bytes.Equal(back, compact) {
		t.Errorf("DDR -> compact: %v", err)
	}
}

// randomLevels returns n random 3-bit levels.
func randomLevels(n int, seed uint64) []uint8 {
	rng, v := rand.New(rand.NewPCG(seed, 2)), make([]uint8, n)
	for i := range v {
		v[i] = uint8(rng.IntN(8))
	}
	return v
}
