package bitstream

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// A minimal flattened device tree (FDT, "dtb") encoder: enough to build the overlay blob
// that makes a mainline kernel's fpga-region load a bitstream. Format: devicetree
// specification v0.4, chapter 5 (header, memory reservation block, structure block,
// strings block; all big-endian).

const (
	fdtMagic     = 0xd00dfeed
	fdtBeginNode = 0x1
	fdtEndNode   = 0x2
	fdtProp      = 0x3
	fdtEnd       = 0x9
	fdtVersion   = 17
	fdtLastComp  = 16
	fdtHeaderLen = 40
	fdtRsvmapLen = 16 // just the terminating empty entry
)

// FDTNode is one node of a device tree to encode.
type FDTNode struct {
	Name     string // "" for the root
	Props    []FDTProp
	Children []*FDTNode
}

// FDTProp is one property; Value is stored verbatim.
type FDTProp struct {
	Name  string
	Value []byte
}

// StringProp builds a string property (NUL-terminated, as dtc stores "...").
func StringProp(name, value string) FDTProp {
	return FDTProp{Name: name, Value: append([]byte(value), 0)}
}

// EncodeFDT serialises root as a version 17 flattened device tree blob.
func EncodeFDT(root *FDTNode) ([]byte, error) {
	e := &fdtEncoder{nameOff: map[string]uint32{}}
	if err := e.node(root); err != nil {
		return nil, err
	}
	e.word(fdtEnd)

	structOff := fdtHeaderLen + fdtRsvmapLen
	stringsOff := structOff + len(e.structs)
	total := stringsOff + len(e.strings)
	blob := make([]byte, fdtHeaderLen+fdtRsvmapLen, total)
	for i, v := range []uint32{
		fdtMagic, uint32(total), uint32(structOff), uint32(stringsOff), fdtHeaderLen,
		fdtVersion, fdtLastComp, 0 /* boot cpu */, uint32(len(e.strings)), uint32(len(e.structs)),
	} {
		binary.BigEndian.PutUint32(blob[4*i:], v)
	}
	blob = append(blob, e.structs...)
	return append(blob, e.strings...), nil
}

type fdtEncoder struct {
	structs []byte
	strings []byte
	nameOff map[string]uint32 // property name -> offset in strings, shared like dtc does
}

func (e *fdtEncoder) word(v uint32) { e.structs = binary.BigEndian.AppendUint32(e.structs, v) }

// padded appends b and zero-pads the structure block to a 4-byte boundary.
func (e *fdtEncoder) padded(b []byte) {
	e.structs = append(e.structs, b...)
	for len(e.structs)%4 != 0 {
		e.structs = append(e.structs, 0)
	}
}

func (e *fdtEncoder) node(n *FDTNode) error {
	if strings.ContainsRune(n.Name, 0) || strings.Contains(n.Name, "/") {
		return fmt.Errorf("device tree node name %q: must not contain NUL or '/'", n.Name)
	}
	e.word(fdtBeginNode)
	e.padded(append([]byte(n.Name), 0))
	for _, p := range n.Props {
		if p.Name == "" || strings.ContainsRune(p.Name, 0) {
			return fmt.Errorf("device tree property name %q in node %q: must be non-empty, without NUL", p.Name, n.Name)
		}
		e.word(fdtProp)
		e.word(uint32(len(p.Value)))
		e.word(e.stringOffset(p.Name))
		e.padded(p.Value)
	}
	for _, c := range n.Children {
		if err := e.node(c); err != nil {
			return err
		}
	}
	e.word(fdtEndNode)
	return nil
}

func (e *fdtEncoder) stringOffset(name string) uint32 {
	if off, ok := e.nameOff[name]; ok {
		return off
	}
	off := uint32(len(e.strings))
	e.strings = append(append(e.strings, name...), 0)
	e.nameOff[name] = off
	return off
}

// DefaultRegionPath is the full-reconfiguration FPGA region of Xilinx's Zynq device trees.
const DefaultRegionPath = "/fpga-full"

// FirmwareOverlay returns the device-tree overlay blob (dtbo) that asks the kernel's FPGA
// region at regionPath to load firmware (a file name relative to /lib/firmware):
//
//	/ { fragment@0 { target-path = "/fpga-full";
//	    __overlay__ { firmware-name = "x.bin"; }; }; };
//
// partial adds the boolean partial-fpga-config property (partial reconfiguration).
func FirmwareOverlay(regionPath, firmware string, partial bool) ([]byte, error) {
	if regionPath == "" {
		regionPath = DefaultRegionPath
	}
	if firmware == "" || strings.ContainsRune(firmware, 0) {
		return nil, fmt.Errorf("overlay firmware name %q: must be a non-empty file name", firmware)
	}
	props := []FDTProp{StringProp("firmware-name", firmware)}
	if partial {
		props = append(props, FDTProp{Name: "partial-fpga-config"})
	}
	root := &FDTNode{Children: []*FDTNode{{
		Name:     "fragment@0",
		Props:    []FDTProp{StringProp("target-path", regionPath)},
		Children: []*FDTNode{{Name: "__overlay__", Props: props}},
	}}}
	return EncodeFDT(root)
}
