package bitstream

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// decodeFDT is an independent reader of flattened device trees for the tests: it checks
// the header and returns every property as "/path/node:prop" -> value.
func decodeFDT(blob []byte) (map[string][]byte, error) {
	if len(blob) < fdtHeaderLen {
		return nil, fmt.Errorf("blob of %d bytes", len(blob))
	}
	w := func(i int) int { return int(binary.BigEndian.Uint32(blob[4*i:])) }
	if uint32(w(0)) != fdtMagic || w(1) != len(blob) || w(5) != 17 || w(6) != 16 {
		return nil, fmt.Errorf("header %x", blob[:fdtHeaderLen])
	}
	rsv, structs, strs := w(4), blob[w(2):w(2)+w(9)], blob[w(3):w(3)+w(8)]
	if !bytes.Equal(blob[rsv:rsv+16], make([]byte, 16)) {
		return nil, fmt.Errorf("reservation map not terminated")
	}
	props := map[string][]byte{}
	var path []string
	for off := 0; off+4 <= len(structs); {
		tok := binary.BigEndian.Uint32(structs[off:])
		off += 4
		switch tok {
		case fdtBeginNode:
			end := bytes.IndexByte(structs[off:], 0)
			path = append(path, string(structs[off:off+end]))
			off += (end + 4) &^ 3
		case fdtEndNode:
			path = path[:len(path)-1]
		case fdtProp:
			n := int(binary.BigEndian.Uint32(structs[off:]))
			nameOff := int(binary.BigEndian.Uint32(structs[off+4:]))
			name := string(strs[nameOff : nameOff+bytes.IndexByte(strs[nameOff:], 0)])
			props[strings.Join(path, "/")+":"+name] = structs[off+8 : off+8+n]
			off += 8 + (n+3)&^3
		case fdtEnd:
			if len(path) != 0 || off != len(structs) {
				return nil, fmt.Errorf("FDT_END at %d with open nodes %v", off, path)
			}
			return props, nil
		default:
			return nil, fmt.Errorf("token %#x at %d", tok, off-4)
		}
	}
	return nil, fmt.Errorf("no FDT_END")
}

func TestFirmwareOverlay(t *testing.T) {
	blob, err := FirmwareOverlay("", "design.bin", true)
	if err != nil {
		t.Fatal(err)
	}
	props, err := decodeFDT(blob)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/fragment@0:target-path":                     "/fpga-full\x00",
		"/fragment@0/__overlay__:firmware-name":       "design.bin\x00",
		"/fragment@0/__overlay__:partial-fpga-config": "",
	}
	if len(props) != len(want) {
		t.Errorf("props %q", props)
	}
	for k, v := range want {
		if string(props[k]) != v {
			t.Errorf("%s = %q, want %q", k, props[k], v)
		}
	}
	if _, err := FirmwareOverlay("", "", false); err == nil {
		t.Error("empty firmware name accepted")
	}
}

// TestFirmwareOverlayDTC has the device tree compiler decompile the blob, when installed
// (Debian package device-tree-compiler).
func TestFirmwareOverlayDTC(t *testing.T) {
	dtc, err := exec.LookPath("dtc")
	if err != nil {
		t.Skip("dtc not installed (apt-get install device-tree-compiler)")
	}
	blob, err := FirmwareOverlay("/fpga-full", "x.bin", false)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dtc, "-I", "dtb", "-O", "dts", "-")
	cmd.Stdin = bytes.NewReader(blob)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dtc: %v\n%s", err, out)
	}
	for _, s := range []string{`target-path = "/fpga-full";`, `__overlay__ {`, `firmware-name = "x.bin";`} {
		if !strings.Contains(string(out), s) {
			t.Errorf("dtc output lacks %s:\n%s", s, out)
		}
	}
}

func TestEncodeFDTRejectsBadNames(t *testing.T) {
	for _, n := range []*FDTNode{
		{Children: []*FDTNode{{Name: "a/b"}}},
		{Props: []FDTProp{{Name: ""}}},
	} {
		if _, err := EncodeFDT(n); err == nil {
			t.Errorf("%+v accepted", n)
		}
	}
}
