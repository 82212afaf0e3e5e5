package bitstream

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"reflect"
	"testing"
	"testing/iotest"
)

func TestParseRealBitstream(t *testing.T) {
	_, data := realBit(t)
	b, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{
		Design:        "procsys_wrapper;UserID=0XFFFFFFFF;Version=2017.4",
		DesignName:    "procsys_wrapper",
		UserID:        "0XFFFFFFFF",
		Version:       "2017.4",
		Part:          "7z020clg400",
		Date:          "2018/10/16",
		Time:          "17:41:26",
		PayloadOffset: 111,
		PayloadLen:    int64(len(data)) - 111,
	}
	got := b.Header
	got.Attributes = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("header\n got %+v\nwant %+v", got, want)
	}
	if b.Attributes["UserID"] != "0XFFFFFFFF" || len(b.Attributes) != 2 {
		t.Errorf("attributes %v", b.Attributes)
	}
	if err := b.CheckPart("", false); err != nil {
		t.Errorf("part check: %v", err)
	}
	if len(b.Payload) != int(b.PayloadLen) {
		t.Errorf("payload %d bytes, header says %d", len(b.Payload), b.PayloadLen)
	}
}

func TestDecodeMatchesParse(t *testing.T) {
	for name, data := range map[string][]byte{"synthetic": defaultBit(), "real": nil} {
		if data == nil {
			_, data = realBit(t)
		}
		p, err := Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		// a reader returning one byte at a time exercises every short read
		for _, size := range []int64{int64(len(data)), -1} {
			var payload bytes.Buffer
			h, err := Decode(iotest.OneByteReader(bytes.NewReader(data)), size, &payload)
			if err != nil {
				t.Fatalf("%s size %d: %v", name, size, err)
			}
			if h.Part != p.Part || h.PayloadLen != p.PayloadLen || !bytes.Equal(payload.Bytes(), p.Payload) {
				t.Errorf("%s size %d: Decode and Parse disagree", name, size)
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	good := defaultBit()
	payloadOff := len(good) - len(testPayload())
	// offsets inside good: 0 preamble len, 2 preamble, 11 key len, 13 'a', 14 a len, 16 a value
	aEnd := 16 + len("top;UserID=0X1234;Version=2022.1") + 1
	patch := func(off int, bs ...byte) []byte {
		b := append([]byte(nil), good...)
		copy(b[off:], bs)
		return b
	}
	tests := []struct {
		name   string
		data   []byte
		want   error
		field  string
		offset int64
	}{
		{"empty", nil, ErrTruncated, "preamble length", 0},
		{"preamble length", patch(0, 0x00, 0x08), ErrBadLength, "preamble length", 0},
		{"preamble cut", good[:5], ErrTruncated, "preamble", 2},
		{"key length", patch(11, 0x00, 0x02), ErrBadLength, "key length", 11},
		{"first key", patch(13, 'b'), ErrUnexpectedKey, "a (design)", 13},
		{"design length zero", patch(14, 0, 0), ErrBadLength, "a (design)", 14},
		{"design cut", good[:20], ErrTruncated, "a (design)", 16},
		{"design not terminated", patch(aEnd-1, 'x'), ErrNotTerminated, "a (design)", 16},
		{"design inner NUL", patch(17, 0), ErrBadLength, "a (design)", 17},
		{"part key", patch(aEnd, 'z'), ErrUnexpectedKey, "b (part)", int64(aEnd)},
		{"payload key", patch(payloadOff-5, 'f'), ErrUnexpectedKey, "e (configuration data)", int64(payloadOff - 5)},
		{"payload length cut", good[:payloadOff-2], ErrTruncated, "e (configuration data) length", int64(payloadOff - 4)},
		{"payload cut", good[:len(good)-3], ErrTruncated, "e (configuration data)", int64(payloadOff)},
		{"trailing", append(append([]byte(nil), good...), 0), ErrTrailingData, "e (configuration data)", int64(len(good))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.data)
			checkFieldError(t, err, tc.want, tc.field, tc.offset)
			// the streaming decoder without a size must find the same problem
			_, err = Decode(bytes.NewReader(tc.data), -1, nil)
			if !errors.Is(err, tc.want) {
				t.Errorf("Decode: %v, want %v", err, tc.want)
			}
		})
	}
}

func checkFieldError(t *testing.T, err, want error, field string, offset int64) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *FieldError", err)
	}
	if fe.Field != field || fe.Offset != offset {
		t.Errorf("error %q: field %q offset %d, want %q at %d", err, fe.Field, fe.Offset, field, offset)
	}
}

func TestDesignWithoutAttributes(t *testing.T) {
	b, err := Parse(makeBit("old_design", "7z010clg400", "2014/01/01", "00:00:00", testPayload()))
	if err != nil {
		t.Fatal(err)
	}
	if b.DesignName != "old_design" || b.UserID != "" || b.Version != "" || b.Attributes != nil {
		t.Errorf("header %+v", b.Header)
	}
}

func TestCheckPart(t *testing.T) {
	b, err := Parse(makeBit("x", "7z010clg400", "d", "t", testPayload()))
	if err != nil {
		t.Fatal(err)
	}
	err = b.CheckPart("", false)
	var pe *PartError
	if !errors.As(err, &pe) || !errors.Is(err, ErrWrongPart) || pe.Got != "7z010clg400" || pe.Want != PartPYNQZ2 {
		t.Fatalf("CheckPart: %v", err)
	}
	for _, s := range []string{"7z010clg400", "7z020clg400", "force"} {
		if !bytes.Contains([]byte(err.Error()), []byte(s)) {
			t.Errorf("message %q lacks %q", err, s)
		}
	}
	if err := b.CheckPart("", true); err != nil {
		t.Errorf("forced: %v", err)
	}
	if err := b.CheckPart("7z010clg400", false); err != nil {
		t.Errorf("matching part: %v", err)
	}
}

func TestToBinReal(t *testing.T) {
	_, data := realBit(t)
	var out bytes.Buffer
	h, err := ToBin(&out, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	bin := out.Bytes()
	if int64(len(bin)) != h.PayloadLen {
		t.Fatalf(".bin is %d bytes, payload %d", len(bin), h.PayloadLen)
	}
	// what the Zynq driver expects at the start: dummy words, the byte-swapped
	// bus-width words and the sync word at byte 48
	if got := FindSyncWord(bin); got != 48 {
		t.Errorf("sync word at %d, want 48", got)
	}
	if !bytes.Equal(bin[32:40], []byte{0xbb, 0, 0, 0, 0x44, 0, 0x22, 0x11}) {
		t.Errorf("bus width words % x", bin[32:40])
	}
	p, _ := Parse(data)
	want, err := BinFromPayload(p.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(bin) != sha256.Sum256(want) {
		t.Error("ToBin and BinFromPayload disagree")
	}
	// swapping twice gives the payload back
	SwapWords(bin)
	if !bytes.Equal(bin, p.Payload) {
		t.Error("double swap is not the identity")
	}
}

func TestToBinErrors(t *testing.T) {
	noSync := testPayload()
	copy(noSync[24:], []byte{1, 2, 3, 4})
	unaligned := append(testPayload()[:20], append([]byte{0}, testPayload()[20:]...)...)
	tests := []struct {
		name string
		bit  []byte
		want error
	}{
		{"no sync word", makeBit("x", PartPYNQZ2, "d", "t", noSync), ErrNoSyncWord},
		{"sync word off the word grid", makeBit("x", PartPYNQZ2, "d", "t", append(unaligned, 0, 0, 0)), ErrNoSyncWord},
		{"length not a multiple of 4", makeBit("x", PartPYNQZ2, "d", "t", testPayload()[:30]), ErrBadLength},
		{"truncated", defaultBit()[:len(defaultBit())-1], ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ToBin(io.Discard, bytes.NewReader(tc.bit), -1)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ToBin: %v, want %v", err, tc.want)
			}
		})
	}
	_, err := ToBin(io.Discard, bytes.NewReader(makeBit("x", PartPYNQZ2, "d", "t", noSync)), -1)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("could not find a sync word")) {
		t.Errorf("message %q should quote the kernel", err)
	}
}
