// Package todarknet owns the export of any model the IR holds to a float darknet model
// (cfg + .weights) and the way back: the batch norms that reproduce a quantized layer's
// integer thresholds ([FitChannel], [Export], [Result.WriteFiles]), the thresholds a
// batch norm and an activation quantizer imply ([Requantize], [CheckFiles]), the
// sidecar file (M.quant.json, [Sidecar]) that records the activation scales and bit
// widths the float model must be quantized with to give back the quantized model
// ([ApplyScales] hands them to a quantization flow that derives thresholds itself), and
// rolling batch-norm statistics for training the export in darknet
// ([Result.CalibrateBN]).
//
// The float model. Darknet has no clip-and-quantize activation, so the exported model is
// the float model whose quantization gives back the IR's quantized model: every layer
// keeps its float weights (binary layers: +1/-1 with binary=1, which darknet's
// per-filter sign*mean|w| binarization leaves unchanged), quantized activations become
// plain ReLU (no clip, no rounding), and each threshold layer gets a batch norm
// y = A*acc + B (acc = sum of weight times input level, as the IR defines it) chosen so
// that quantizing y the way the sidecar says — level = clip(round(y/s), 0, 2^bits-1),
// i.e. level >= k iff y >= (k-1/2)*s — gives count(acc >= T_k) on every reachable acc.
//
// The batch norm in darknet terms (pjreddie: y = scale*(x-mean)/(sqrt(var)+1e-6) + bias;
// AlexeyAB: sqrt(var+1e-5)) with x = s_in*acc the float convolution of the input levels
// times their scale s_in: mean 0, variance [BNVariance] (chosen so that both darknets'
// epsilons give the same divisor), scale = A*sigma/s_in, bias = B; or, after
// [Result.CalibrateBN], the measured mean and variance with scale and bias adjusted to
// the same A and B. The gain A/s_in has [GainBits] significant bits ([SnapGain]), so a
// flow that folds the batch norm into the weights and rounds weight scales sees it
// exactly. Inverted channels (the engine's output = 7 - count(acc >= T)) get a negative
// A (negative BN scale); the weights are never flipped, so re-quantizing gives back the
// same weights, thresholds and invert flags. Channels whose output is constant over the
// reachable acc range get A = 0 and B = level*s. A threshold layer's own bias is
// ignored, as the engine ignores it.
//
// Being unclipped and unrounded, the relu float model computes something else than the
// quantized one (on dog.jpg the exported Tinier-YOLO finds a bicycle and a chair, the
// W1A3 model a dog, a car and a bicycle). [ExportWith] with [FloatLHTan] writes darknet's
// lhtan (about clip(y, 0, 1)) instead, with every quantizer's scale 1/(2^bits-1): that
// float model is the quantized one without rounding and finds the dog, car and bicycle
// in libdarknet. quant/darknet cannot read lhtan, so [LoadExport] reads it as relu (the
// same quantized model).
//
// Activation scales. The sidecar lists every quantized layer by darknet index and by the
// name quant/darknet's reader gives it, with its weight bits (1: bipolar), activation
// bits and scale, and for threshold layers the bits and scale of the input levels. For
// the QNN-MO model: conv0 float weights, 3 bits, scale 4/7 (its clip [0,4]); conv1..7
// bipolar, 3 bits, scale 1 (QNN-MO feeds raw levels to conv8; any scale would do, as
// relu is scale-free, but 1 keeps conv8 unchanged); conv8 float, not listed.
//
// The reverse ([Requantize]) is quant/qonnx's one derivation ([qonnx.LevelFunc.Thresholds]),
// the one quant calibrate and quant qnn-dir use: the thresholds at which the float graph's
// level of y (in float32, round half to even) steps, which is DESIGN.md section 4's
// T_k = ceil(((k-1/2)s - B)/A) except at exact ties; A < 0 gives an inverted channel,
// A = 0 a constant one. Thresholds beyond the reachable range [-R, R] (R = max input
// level * sum |w|) are -R ("always") or R+1 ("never").
package todarknet
