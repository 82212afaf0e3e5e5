package qnnmo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseNpyFixtures(t *testing.T) {
	dir := paramsDir(t)
	for name, shape := range map[string][]int{
		"tinier-yolo-conv0-W.npy":    {3, 3, 3, 16},
		"tinier-yolo-conv0-bias.npy": {16},
		"tinier-yolo-conv8-W.npy":    {1, 1, 512, 125}, // stored in Fortran order
		"tinier-yolo-conv8-bias.npy": {125},
	} {
		a, err := ReadNpyFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !equalInts(a.Shape, shape) || len(a.Data) != a.Size() {
			t.Errorf("%s: shape %v (%d values), want %v", name, a.Shape, len(a.Data), shape)
		}
	}
}

func TestParseNpyOrders(t *testing.T) {
	c := &Array{Shape: []int{2, 3}, Data: []float32{0, 1, 2, 3, 4, 5}}
	data := encodeNpy(c)
	got, err := ParseNpy(data)
	if err != nil || !equalInts(got.Shape, c.Shape) || got.Data[4] != 4 {
		t.Fatalf("C order: %+v %v", got, err)
	}
	// The same logical array stored column-major.
	f := []byte(string(data))
	copyF := []float32{0, 3, 1, 4, 2, 5}
	hdrEnd := len(f) - 24
	fo := encodeNpy(&Array{Shape: []int{2, 3}, Data: copyF})
	fo = []byte(replaceOnce(string(fo[:hdrEnd]), "'fortran_order': False", "'fortran_order': True ") + string(fo[hdrEnd:]))
	got, err = ParseNpy(fo)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range c.Data {
		if got.Data[i] != v {
			t.Fatalf("Fortran order: %v, want %v", got.Data, c.Data)
		}
	}
	// float64 data.
	f8 := []byte("\x93NUMPY\x01\x00\x46\x00{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }            \n\x00\x00\x00\x00\x00\x00\xf0\x3f")
	got, err = ParseNpy(f8)
	if err != nil || got.Data[0] != 1 {
		t.Errorf("float64: %+v %v", got, err)
	}
}

func replaceOnce(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	return s
}

func TestParseNpyErrors(t *testing.T) {
	good := encodeNpy(&Array{Shape: []int{2}, Data: []float32{1, 2}})
	for name, data := range map[string][]byte{
		"empty":     nil,
		"magic":     []byte("NUMPY\x01\x00\x00\x00"),
		"version":   append([]byte("\x93NUMPY\x09\x00"), good[8:]...),
		"truncated": good[:len(good)-1],
		"header":    good[:20],
		"dtype":     []byte(replaceOnce(string(good), "<f4", "<i4")),
		"shape":     []byte(replaceOnce(string(good), "(2,)", "(x,)")),
		"huge":      []byte(replaceOnce(string(good), "(2,)", "(99999999999,)")),
	} {
		if _, err := ParseNpy(data); err == nil || !errors.Is(err, ErrNpy) {
			t.Errorf("%s: err = %v, want ErrNpy", name, err)
		}
	}
}

func FuzzParseNpy(f *testing.F) {
	f.Add(encodeNpy(&Array{Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}}))
	f.Add([]byte("\x93NUMPY\x02\x00\x10\x00\x00\x00{'descr': '<f4'}"))
	f.Add([]byte("\x93NUMPY\x01\x00\xff\xff"))
	if dir := os.Getenv("PYNQ_FIXTURES"); dir != "" {
		if data, err := os.ReadFile(filepath.Join(dir, "qnn-mo-pynq", "params", "tinier-yolo-conv8-bias.npy")); err == nil {
			f.Add(data)
		}
	}
	if data, err := os.ReadFile("../../../shared/fixtures/qnn-mo-pynq/params/tinier-yolo-conv0-bias.npy"); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseNpy(data)
		if err != nil {
			return
		}
		if len(a.Data) != a.Size() {
			t.Fatalf("shape %v but %d values", a.Shape, len(a.Data))
		}
	})
}

// encodeNpy writes a version 1.0 '<f4' C-order .npy file (tests and exports).
func encodeNpy(a *Array) []byte {
	dims := make([]string, len(a.Shape))
	for i, d := range a.Shape {
		dims[i] = strconv.Itoa(d)
	}
	shape := strings.Join(dims, ", ")
	if len(dims) == 1 {
		shape += ","
	}
	hdr := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", shape)
	pad := 64 - (10+len(hdr)+1)%64
	hdr += strings.Repeat(" ", pad%64) + "\n"
	var b bytes.Buffer
	b.WriteString(npyMagic)
	b.Write([]byte{1, 0})
	binary.Write(&b, binary.LittleEndian, uint16(len(hdr)))
	b.WriteString(hdr)
	for _, v := range a.Data {
		binary.Write(&b, binary.LittleEndian, math.Float32bits(v))
	}
	return b.Bytes()
}
