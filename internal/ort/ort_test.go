//go:build cgo

package ort

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
)

func requireLib(tb testing.TB) {
	tb.Helper()
	if err := Init(); err != nil {
		if errors.Is(err, ErrNoLibrary) {
			tb.Skipf("onnxruntime unavailable: %v", err)
		}
		tb.Fatal(err)
	}
}

// reluModel writes a one-node graph y = Relu(x) with x, y float [1,2,2,2].
func reluModel(tb testing.TB) string {
	tb.Helper()
	s := func(v string) *string { return &v }
	dims := &onnxpb.TensorShapeProto{}
	for _, d := range []int64{1, 2, 2, 2} {
		dims.Dim = append(dims.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
	}
	float := int32(onnxpb.TensorProto_FLOAT)
	typ := &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: &float, Shape: dims}}}
	ir, opset := int64(7), int64(13)
	mp := &onnxpb.ModelProto{
		IrVersion:   &ir,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: s(""), Version: &opset}},
		Graph: &onnxpb.GraphProto{
			Name:   s("relu"),
			Node:   []*onnxpb.NodeProto{{OpType: s("Relu"), Name: s("relu"), Input: []string{"x"}, Output: []string{"y"}}},
			Input:  []*onnxpb.ValueInfoProto{{Name: s("x"), Type: typ}},
			Output: []*onnxpb.ValueInfoProto{{Name: s("y"), Type: typ}},
		},
	}
	data, err := proto.Marshal(mp)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "relu.onnx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestRunFile(t *testing.T) {
	requireLib(t)
	out, err := RunFile(reluModel(t), []float32{-1, 2, -3, 4, 0, -0.5, 6, 7}, Options{IntraOpThreads: 2})
	if err != nil {
		t.Fatal(err)
	}
	y, ok := out["y"]
	if !ok {
		t.Fatalf("outputs %v, want y", out)
	}
	want := []float32{0, 2, 0, 4, 0, 0, 6, 7}
	for i := range want {
		if y.Data[i] != want[i] {
			t.Fatalf("relu = %v, want %v", y.Data, want)
		}
	}
	if len(y.Shape) != 4 || y.Shape[1] != 2 {
		t.Errorf("shape %v, want [1 2 2 2]", y.Shape)
	}
}

func TestRunRejectsWrongInputSize(t *testing.T) {
	requireLib(t)
	_, err := RunFile(reluModel(t), []float32{1, 2, 3}, Options{})
	if err == nil || !strings.Contains(err.Error(), "model wants 8") {
		t.Fatalf("error %v, want a size mismatch", err)
	}
}

func TestThroughput(t *testing.T) {
	requireLib(t)
	ips, err := Throughput(reluModel(t), 1, time.Millisecond)
	if err != nil || ips <= 0 {
		t.Fatalf("throughput %v, %v", ips, err)
	}
}

func TestLibraryPathEnv(t *testing.T) {
	t.Setenv(LibEnv, filepath.Join(t.TempDir(), "missing.so"))
	if _, err := LibraryPath(); err == nil || !strings.Contains(err.Error(), LibEnv) {
		t.Errorf("missing %s: %v, want an error naming the variable", LibEnv, err)
	}
}
