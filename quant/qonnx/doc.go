// Package qonnx owns the QONNX form of the model IR that the quantization guide's steps
// read and write (pynqctl quant finn / weights / activations / calibrate): the steps
// themselves on the IR ([Finn], [QuantizeWeights], [QuantizeActivations]), the integer
// thresholds that replace batch norm + activation + quantizer ([SetThresholds], by the
// one derivation [LevelFunc.Thresholds] that quant/qnnmo and quant/todarknet use too), the
// QONNX writer ([Build], [WriteFile]) and reader ([ReadFile], [Read]), and a small
// executor of the QONNX op semantics ([Execute]) that checks the files mean what the
// quantized engine (quant/quantengine) computes.
//
// # Files
//
// Opset 11 plus ("qonnx.custom_op.general", 1); NCHW; explicit pads. The graph input
// "input" is float [1,C,H,W] holding 0..255 pixel values annotated UINT8 (finn_datatype
// in graph.quantization_annotation); a Mul by 1/255 gives the [0,1] values darknet
// feeds. Per IR layer (tensor and node names as quant/onnx: the layer's name, helper
// nodes "<layer>/<what>"):
//
//	convolutional: [BipolarQuant(W, alpha) | Quant(W, s, 0, bits) signed narrow] -> Conv
//	               -> [BatchNormalization (epsilon 0, variance = sd^2)] -> activation
//	               (Relu, LeakyRelu 0.1, Sigmoid) -> [Quant(x, s, 0, bits) ROUND]
//	maxpool: MaxPool (pads top/left pad/2, bottom/right the rest); route: Concat (Slice
//	for groups); shortcut: Add + activation; upsample: Resize nearest/asymmetric/floor
//	(+ Mul for a scale); dropout: Identity; region/yolo: Identity to "head_<index>".
//
// The streamlined variant ([Options.Streamlined]) replaces every convolution that has
// integer thresholds by Conv(levels, ±1 weights; a channel's weights negated where its
// thresholds are inverted) -> MultiThreshold(out_dtype UINT3, out_scale 1, out_bias 0,
// data_layout NCHW): its tensors hold levels (integers); a Mul by the scale restores
// values where a float layer reads them, and a quantized layer without thresholds emits
// its levels with a Div by its scale.
//
// The IR structure (layer kinds, hyper-parameters, quantization facts, thresholds) is
// also stored as JSON in metadata_props["pynq.qonnx"] with the names of the initializers
// holding each layer's tensors; [Read] rebuilds the IR from it and the initializers, so
// it reads the files these steps write (and, without that entry, plain ONNX through
// quant/onnx).
//
// # Exact arithmetic
//
// The quantized engine's integer thresholds and the float QONNX graph must give the
// same levels bit for bit. Two choices make that possible: activation scales keep at
// most 24-ActBits significant bits and binary weight scales 12 ([RoundActScale],
// [RoundWeightScale]), so level*scale is exact in float32 and a binary convolution over
// quantized inputs, summed in float64 as [Execute] does, is exactly acc*alpha*s_in for
// the integer acc = sum(sign*level); everything after the convolution is elementwise, so
// the level is a monotone function F(acc) of float32 operations, and [SetThresholds]
// finds each threshold by evaluating F itself (bisection over the acc range) rather
// than by the closed form ceil(((k-1/2)*s - B)/A), which it equals up to float rounding
// at exact ties.
package qonnx
