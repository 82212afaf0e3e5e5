// Package headtest builds detection-head outputs by hand for the tests of the packages
// that decode them (quant/boxes, quant/detector).
package headtest

import "github.com/fpgadetector/pynq-agent/quant"

// Model is a model whose only layer is a detection head over a gw x gh grid, with a
// net x net input (shapes set directly: decoding reads nothing else).
func Model(kind quant.Kind, h *quant.Head, net, gw, gh int) *quant.Model {
	per := 5 + h.Classes
	return &quant.Model{
		Input:  quant.Shape{C: 3, H: net, W: net},
		Layers: []*quant.Layer{{Kind: kind, Name: "head", Head: h, Out: quant.Shape{C: h.Num * per, H: gh, W: gw}}},
	}
}

// SetEntry writes field f of anchor n at grid cell (row, col) of a head output laid out
// [anchor][field][cell].
func SetEntry(out []float32, h *quant.Head, gw, gh, n, f, row, col int, v float32) {
	per := 5 + h.Classes
	out[(n*per+f)*gw*gh+row*gw+col] = v
}
