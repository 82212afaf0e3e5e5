package qonnx

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb"
)

// Small constructors and decoders for the generated proto2 types.

func ptr[T any](v T) *T { return &v }

func attrInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: &name, Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func attrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: &name, Type: onnxpb.AttributeProto_INT.Enum(), I: &v}
}

func attrFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: &name, Type: onnxpb.AttributeProto_FLOAT.Enum(), F: &v}
}

func attrString(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: &name, Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

func floatTensor(name string, dims []int64, data []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &onnxpb.TensorProto{Name: &name, Dims: dims, DataType: ptr(int32(onnxpb.TensorProto_FLOAT)), RawData: raw}
}

func int64Tensor(name string, dims []int64, data []int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: &name, Dims: dims, DataType: ptr(int32(onnxpb.TensorProto_INT64)), Int64Data: data}
}

func tensorType(dims ...int64) *onnxpb.TypeProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{
			Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d},
		})
	}
	return &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
		ElemType: ptr(int32(onnxpb.TensorProto_FLOAT)), Shape: shape,
	}}}
}

const maxTensorElems = 1 << 30

func tensorElems(t *onnxpb.TensorProto) (int, error) {
	n := 1
	for _, d := range t.GetDims() {
		if d < 0 || d > maxTensorElems || (d > 0 && n > maxTensorElems/int(d)) {
			return 0, fmt.Errorf("tensor %q: dims %v out of range", t.GetName(), t.GetDims())
		}
		n *= int(d)
	}
	return n, nil
}

// floatsOf decodes a FLOAT tensor (float_data or raw_data).
func floatsOf(t *onnxpb.TensorProto) ([]float32, error) {
	if t.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
		return nil, fmt.Errorf("tensor %q: data type %d, want FLOAT", t.GetName(), t.GetDataType())
	}
	n, err := tensorElems(t)
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
	}
	return nil, fmt.Errorf("tensor %q: %d values for dims %v", t.GetName(), len(t.FloatData), t.GetDims())
}

// int64sOf decodes an INT64 tensor (int64_data or raw_data).
func int64sOf(t *onnxpb.TensorProto) ([]int64, error) {
	if t.GetDataType() != int32(onnxpb.TensorProto_INT64) {
		return nil, fmt.Errorf("tensor %q: data type %d, want INT64", t.GetName(), t.GetDataType())
	}
	n, err := tensorElems(t)
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
	}
	return nil, fmt.Errorf("tensor %q: %d values for dims %v", t.GetName(), len(t.Int64Data), t.GetDims())
}

type attrs map[string]*onnxpb.AttributeProto

func nodeAttrs(n *onnxpb.NodeProto) attrs {
	a := attrs{}
	for _, at := range n.GetAttribute() {
		a[at.GetName()] = at
	}
	return a
}

func (a attrs) ints(name string, def []int64) []int64 {
	if at, ok := a[name]; ok {
		return at.GetInts()
	}
	return def
}

func (a attrs) int(name string, def int64) int64 {
	if at, ok := a[name]; ok {
		return at.GetI()
	}
	return def
}

func (a attrs) float(name string, def float32) float32 {
	if at, ok := a[name]; ok {
		return at.GetF()
	}
	return def
}

func (a attrs) str(name, def string) string {
	if at, ok := a[name]; ok {
		return string(at.GetS())
	}
	return def
}
