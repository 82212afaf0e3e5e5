package onnx

import (
	"encoding/json"
	"fmt"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxbuild"
	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
)

// Metadata keys (see the package documentation for their JSON values).
const (
	MetaModel      = "pynq.model"
	MetaHeadPrefix = "pynq.head."
	metaFormat     = 1
)

// ModelMeta is the JSON value of the "pynq.model" metadata entry.
type ModelMeta struct {
	Format       int      `json:"format"`
	Name         string   `json:"name,omitempty"`
	Dialect      string   `json:"dialect,omitempty"`
	Input        [3]int   `json:"input"` // C, H, W
	Classes      int      `json:"classes,omitempty"`
	BNEpsilon    float32  `json:"bn_epsilon"`
	BNEpsInside  bool     `json:"bn_eps_inside"`
	BNFolded     bool     `json:"bn_folded"`
	Heads        []string `json:"heads"`
	BinaryLayers []string `json:"binary_layers,omitempty"`
}

// HeadMeta is the JSON value of a "pynq.head.<output>" metadata entry: everything a
// decoder needs to turn the raw head tensor into boxes.
type HeadMeta struct {
	Kind    string    `json:"kind"` // "region" or "yolo"
	Layer   int       `json:"layer"`
	Name    string    `json:"name"`
	Classes int       `json:"classes"`
	Coords  int       `json:"coords"`
	Num     int       `json:"num"`
	Anchors []float32 `json:"anchors"`
	Mask    []int     `json:"mask,omitempty"`
	Softmax bool      `json:"softmax"`
	ScaleXY float32   `json:"scale_x_y"`
	Input   [3]int    `json:"input"` // network input C, H, W
	Shape   [3]int    `json:"shape"` // the head tensor C, H, W
	Dialect string    `json:"dialect,omitempty"`
}

func shape3(s quant.Shape) [3]int { return [3]int{s.C, s.H, s.W} }

func headMeta(m *quant.Model, l *quant.Layer) HeadMeta {
	h := l.Head
	scale := h.ScaleXY
	if scale == 0 {
		scale = 1
	}
	return HeadMeta{
		Kind: string(l.Kind), Layer: l.Index, Name: l.Name,
		Classes: h.Classes, Coords: h.Coords, Num: h.Num,
		Anchors: h.Anchors, Mask: h.Mask, Softmax: h.Softmax, ScaleXY: scale,
		Input: shape3(m.Input), Shape: shape3(l.In), Dialect: string(m.Dialect),
	}
}

// Metadata reads the "pynq.model" and "pynq.head.*" entries of an exported model. ok is
// false when the model carries no "pynq.model" entry (a graph from another exporter).
func Metadata(mp *onnxpb.ModelProto) (mm ModelMeta, heads map[string]HeadMeta, ok bool, err error) {
	heads = map[string]HeadMeta{}
	for _, p := range mp.GetMetadataProps() {
		key := p.GetKey()
		switch {
		case key == MetaModel:
			if err := json.Unmarshal([]byte(p.GetValue()), &mm); err != nil {
				return mm, nil, false, fmt.Errorf("metadata %s: %w", key, err)
			}
			ok = true
		case len(key) > len(MetaHeadPrefix) && key[:len(MetaHeadPrefix)] == MetaHeadPrefix:
			var h HeadMeta
			if err := json.Unmarshal([]byte(p.GetValue()), &h); err != nil {
				return mm, nil, false, fmt.Errorf("metadata %s: %w", key, err)
			}
			heads[key[len(MetaHeadPrefix):]] = h
		}
	}
	if ok && mm.Format != metaFormat {
		return mm, nil, false, fmt.Errorf("metadata %s: format %d, this build reads %d (re-export the model)", MetaModel, mm.Format, metaFormat)
	}
	return mm, heads, ok, nil
}

func metaProp(key string, v any) (*onnxpb.StringStringEntryProto, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("metadata %s: %w (NaN or Inf in head parameters?)", key, err)
	}
	return &onnxpb.StringStringEntryProto{Key: &key, Value: onnxbuild.Ptr(string(b))}, nil
}
