package quant

import (
	"errors"
	"strings"
	"testing"
)

func conv(in []int, filters, size, stride, pad, groups int) *Layer {
	return &Layer{Kind: KindConv, Inputs: in, Conv: &Conv{Filters: filters, Size: size, Stride: stride, Pad: pad, Groups: groups, Activation: ActLeaky}}
}

func TestInferShapes(t *testing.T) {
	m := &Model{Input: Shape{3, 416, 416}, Layers: []*Layer{
		conv([]int{-1}, 16, 3, 2, 1, 1), // 0: 16x208x208
		{Kind: KindMaxPool, Inputs: []int{0}, Pool: &Pool{Size: 2, Stride: 2, Pad: 1}}, // 1: 16x104x104
		{Kind: KindMaxPool, Inputs: []int{1}, Pool: &Pool{Size: 2, Stride: 1, Pad: 1}}, // 2: same size
		conv([]int{2}, 16, 3, 1, 1, 16), // 3: depthwise
		{Kind: KindShortcut, Inputs: []int{3, 2}, Shortcut: &Shortcut{Activation: ActLinear}},
		{Kind: KindRoute, Inputs: []int{4, 2}, Route: &Route{Groups: 2, GroupID: 1}}, // 5: 8+8 channels
		{Kind: KindUpsample, Inputs: []int{5}, Upsample: &Upsample{Stride: 2, Scale: 1}},
		conv([]int{6}, 3*(5+2), 1, 1, 0, 1),
		{Kind: KindYolo, Inputs: []int{7}, Head: &Head{Classes: 2, Num: 3, Mask: []int{0, 1, 2}, Anchors: []float32{1, 2, 3, 4, 5, 6}}},
	}}
	if err := m.InferShapes(); err != nil {
		t.Fatal(err)
	}
	want := []Shape{{16, 208, 208}, {16, 104, 104}, {16, 104, 104}, {16, 104, 104}, {16, 104, 104}, {16, 104, 104}, {16, 208, 208}, {21, 208, 208}, {21, 208, 208}}
	for i, l := range m.Layers {
		if l.Out != want[i] || l.Index != i {
			t.Errorf("layer %d: out %v index %d, want %v", i, l.Out, l.Index, want[i])
		}
	}
	if got := m.Heads(); len(got) != 1 || got[0] != 8 {
		t.Errorf("Heads() = %v, want [8]", got)
	}
}

func TestInferShapesErrors(t *testing.T) {
	in := Shape{3, 32, 32}
	for _, tc := range []struct {
		name   string
		layers []*Layer
		want   string
	}{
		{"forward reference", []*Layer{conv([]int{1}, 4, 3, 1, 1, 1)}, "not an earlier layer"},
		{"bad groups", []*Layer{conv([]int{-1}, 4, 3, 1, 1, 2)}, "groups 2 do not divide"},
		{"weight count", []*Layer{{Kind: KindConv, Inputs: []int{-1}, Conv: &Conv{Filters: 4, Size: 3, Stride: 1, Pad: 1, Groups: 1, Weights: make([]float32, 5)}}}, "5 weights, want 108"},
		{"empty output", []*Layer{conv([]int{-1}, 4, 64, 1, 0, 1)}, "empty"},
		{"shortcut shapes", []*Layer{conv([]int{-1}, 4, 3, 1, 1, 1), {Kind: KindShortcut, Inputs: []int{0, -1}, Shortcut: &Shortcut{}}}, "only equal shapes"},
		{"route sizes", []*Layer{conv([]int{-1}, 4, 3, 2, 1, 1), {Kind: KindRoute, Inputs: []int{0, -1}, Route: &Route{Groups: 1}}}, "route joins"},
		{"head channels", []*Layer{{Kind: KindRegion, Inputs: []int{-1}, Head: &Head{Classes: 1, Coords: 4, Num: 1, Anchors: []float32{1, 1}}}}, "want num*(5+classes) = 6"},
		{"yolo mask", []*Layer{conv([]int{-1}, 6, 1, 1, 0, 1), {Kind: KindYolo, Inputs: []int{0}, Head: &Head{Classes: 1, Num: 1, Mask: []int{3}, Anchors: []float32{1, 1}}}}, "no anchor"},
		{"unknown kind", []*Layer{{Kind: "avgpool", Inputs: []int{-1}}}, "unknown layer kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&Model{Input: in, Layers: tc.layers}).InferShapes()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if tc.name != "unknown kind" && !errors.Is(err, ErrShape) {
				t.Errorf("err = %v, want it to wrap ErrShape", err)
			}
		})
	}
}
