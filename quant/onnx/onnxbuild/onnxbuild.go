// Package onnxbuild owns the small constructors and decoders for the generated onnxpb
// types that quant/onnx (plain ONNX) and quant/qonnx (QONNX) share. The types are proto2,
// so every scalar field is a pointer; these helpers keep graph-building and -reading code
// free of that noise.
package onnxbuild

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
)

// Ptr returns a pointer to a copy of v, for proto2 optional scalar fields.
func Ptr[T any](v T) *T { return &v }

// AttrInts is an INTS attribute.
func AttrInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: &name, Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

// AttrInt is an INT attribute.
func AttrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: &name, Type: onnxpb.AttributeProto_INT.Enum(), I: &v}
}

// AttrFloat is a FLOAT attribute.
func AttrFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: &name, Type: onnxpb.AttributeProto_FLOAT.Enum(), F: &v}
}

// AttrString is a STRING attribute.
func AttrString(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: &name, Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

// Node is a node in the default domain with one output.
func Node(op, name string, inputs []string, output string, at ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: &op, Name: &name, Input: inputs, Output: []string{output}, Attribute: at}
}

// FloatTensor stores data little-endian in raw_data, the compact form exporters use.
func FloatTensor(name string, dims []int64, data []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &onnxpb.TensorProto{
		Name: &name, Dims: dims, DataType: Ptr(int32(onnxpb.TensorProto_FLOAT)), RawData: raw,
	}
}

// Int64Tensor stores data in int64_data.
func Int64Tensor(name string, dims []int64, data []int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{
		Name: &name, Dims: dims, DataType: Ptr(int32(onnxpb.TensorProto_INT64)), Int64Data: data,
	}
}

// TensorType is the type of a float32 tensor with fixed dims (a graph input or output).
func TensorType(dims ...int64) *onnxpb.TypeProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{
			Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d},
		})
	}
	return &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
		ElemType: Ptr(int32(onnxpb.TensorProto_FLOAT)), Shape: shape,
	}}}
}

// MaxTensorElems bounds what a reader allocates for one tensor (1 Gi elements), so a
// corrupt dims field cannot ask for terabytes.
const MaxTensorElems = 1 << 30

// TensorElems is the element count of t's dims, or an error when a dim is negative or
// the count exceeds [MaxTensorElems].
func TensorElems(t *onnxpb.TensorProto) (int, error) {
	n := 1
	for _, d := range t.GetDims() {
		if d < 0 || d > MaxTensorElems || (d > 0 && n > MaxTensorElems/int(d)) {
			return 0, fmt.Errorf("tensor %q: dims %v out of range", t.GetName(), t.GetDims())
		}
		n *= int(d)
	}
	return n, nil
}

// Floats decodes a FLOAT tensor held in float_data or raw_data.
func Floats(t *onnxpb.TensorProto) ([]float32, error) {
	if t.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
		return nil, fmt.Errorf("tensor %q: data type %s, want FLOAT", t.GetName(), onnxpb.TensorProto_DataType(t.GetDataType()))
	}
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		return nil, fmt.Errorf("tensor %q: external data is not supported (save the model with weights inside)", t.GetName())
	}
	n, err := TensorElems(t)
	if err != nil {
		return nil, err
	}
	switch {
	case t.RawData != nil:
		if len(t.RawData) != 4*n {
			return nil, fmt.Errorf("tensor %q: %d raw bytes for %d floats", t.GetName(), len(t.RawData), n)
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.RawData[4*i:]))
		}
		return out, nil
	case len(t.FloatData) == n:
		return append([]float32(nil), t.FloatData...), nil
	default:
		return nil, fmt.Errorf("tensor %q: %d values for dims %v", t.GetName(), len(t.FloatData), t.GetDims())
	}
}

// Int64s decodes an INT64 tensor held in int64_data or raw_data.
func Int64s(t *onnxpb.TensorProto) ([]int64, error) {
	if t.GetDataType() != int32(onnxpb.TensorProto_INT64) {
		return nil, fmt.Errorf("tensor %q: data type %s, want INT64", t.GetName(), onnxpb.TensorProto_DataType(t.GetDataType()))
	}
	n, err := TensorElems(t)
	if err != nil {
		return nil, err
	}
	switch {
	case t.RawData != nil:
		if len(t.RawData) != 8*n {
			return nil, fmt.Errorf("tensor %q: %d raw bytes for %d int64s", t.GetName(), len(t.RawData), n)
		}
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(t.RawData[8*i:]))
		}
		return out, nil
	case len(t.Int64Data) == n:
		return append([]int64(nil), t.Int64Data...), nil
	default:
		return nil, fmt.Errorf("tensor %q: %d values for dims %v", t.GetName(), len(t.Int64Data), t.GetDims())
	}
}

// Attrs indexes a node's attributes by name; its getters return a default for a
// missing attribute, as the ONNX operator specs define them.
type Attrs map[string]*onnxpb.AttributeProto

// NodeAttrs indexes n's attributes.
func NodeAttrs(n *onnxpb.NodeProto) Attrs {
	a := Attrs{}
	for _, at := range n.GetAttribute() {
		a[at.GetName()] = at
	}
	return a
}

// Ints is attribute name's INTS value, or def.
func (a Attrs) Ints(name string, def []int64) []int64 {
	if at, ok := a[name]; ok {
		return at.GetInts()
	}
	return def
}

// Int is attribute name's INT value, or def.
func (a Attrs) Int(name string, def int64) int64 {
	if at, ok := a[name]; ok {
		return at.GetI()
	}
	return def
}

// Float is attribute name's FLOAT value, or def.
func (a Attrs) Float(name string, def float32) float32 {
	if at, ok := a[name]; ok {
		return at.GetF()
	}
	return def
}

// Str is attribute name's STRING value, or def.
func (a Attrs) Str(name, def string) string {
	if at, ok := a[name]; ok {
		return string(at.GetS())
	}
	return def
}
