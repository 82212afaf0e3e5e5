// Package onnx owns the ONNX form of the model IR: [Export] writes a [quant.Model] as a
// standard opset-13 ONNX graph (what onnxruntime, the onnx checker and FINN's front end
// read), and [Import] maps such graphs, in particular our own exports, back into the IR.
// The protobuf types are generated from the official schema into the subpackage onnxpb.
//
// # Graph layout
//
// One graph input named "input": float32 [1,C,H,W], pixels in [0,1] as darknet feeds
// them. Every IR layer becomes one or a few nodes; the tensor a layer produces is named
// after the layer (falling back to "layer<i>" for empty or clashing names), the node that
// computes it carries the same name and helper nodes are named "<layer>/<what>".
//
//   - convolutional: Conv (explicit pads, group), batch norm folded into the weights and
//     bias unless [ExportOptions.KeepBatchNorm]; binary=1 layers carry darknet's
//     binarized weights (sign times the filter's mean absolute value). Activation:
//     leaky -> LeakyRelu(0.1), relu -> Relu, logistic -> Sigmoid,
//     mish -> Softplus, Tanh, Mul; swish -> Sigmoid, Mul; lhtan (darknet's leaky hard
//     tanh) -> Min(LeakyRelu(x, 0.001), Add(Mul(x, 0.001), 0.999)).
//   - maxpool: MaxPool with pads [pad/2, pad/2, pad-pad/2, pad-pad/2] (darknet pads the
//     bottom/right more; ONNX pads MaxPool with -inf just as darknet does).
//   - route: Concat on channels, Identity for one input; route groups slice each input
//     with Slice (axes [1]) before the Concat.
//   - shortcut: Add, then the activation. upsample: Resize (nearest, asymmetric, floor)
//     and a Mul when its scale is not 1. dropout: omitted (inference is the identity).
//   - region / yolo: an Identity named after the head layer that exposes the head's
//     INPUT (the raw tensor before the head's logistic/softmax) as a graph output named
//     "head_<layer index>".
//
// # Metadata
//
// model.metadata_props carries what decoding and re-import need, as JSON values:
//
//	"pynq.model"            {"format":1, "name", "dialect", "input":[C,H,W], "classes",
//	                         "bn_epsilon", "bn_eps_inside", "bn_folded",
//	                         "heads":[output names], "binary_layers":[layer names]}
//	"pynq.head.<output>"    {"kind":"region"|"yolo", "layer":index, "name":layer name,
//	                         "classes", "coords", "num", "anchors":[w,h,...],
//	                         "mask":[...], "softmax", "scale_x_y",
//	                         "input":[C,H,W] network input, "shape":[C,H,W] of the
//	                         output, "dialect"}
//
// Anchors keep the IR's units: grid cells for region heads, input pixels for yolo heads;
// "num" is the number of anchors this head predicts (len(mask) for yolo, not the cfg's
// num), "coords" is 4 for region heads and 0 for yolo heads.
// "bn_epsilon"/"bn_eps_inside" describe the darknet formula the IR's batch-norm
// parameters were trained with; kept BatchNormalization nodes are converted to ONNX's
// sqrt(var+epsilon) form so that the graph computes the same values: AlexeyAB's
// sqrt(var+eps) keeps the model's epsilon, pjreddie's sqrt(var)+eps becomes epsilon 0
// with var' = (sqrt(var)+eps)^2 (exact in float32, unlike var' = (sqrt(var)+eps)^2-eps).
package onnx
