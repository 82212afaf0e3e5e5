// Package train owns training on the CPU: darknet's `detector train` for the IR's
// Tiny-YOLO/Tinier-YOLO layers (convolution with batch norm and linear, leaky, relu or
// logistic activation; max pool; a YOLOv2 [region] head), in pure Go, and the basis of
// quantization-aware training (qat.go).
//
// What it reproduces from pjreddie darknet: the region loss of region_layer.c (no-object
// objectness below the IoU threshold, the prior-matching term while seen < 12800, best
// anchor by shape, coordinate deltas scaled by (2 - w*h)*coord_scale, rescore, softmax
// classes); batch norm in training mode with rolling statistics moving by .01; SGD with
// momentum and weight decay as update_convolutional_layer; the learning-rate policies
// and burn_in of get_current_rate; load_data_detection's augmentation (jitter, scale,
// offset, flip, HSV); the .weights layout and seen counter. The training options come
// from the cfg's [net] and [region] sections ([ParseConfig]), the model from
// quant/darknet.
//
// How it computes: a mini-batch goes layer by layer with every output kept;
// convolutions are im2col + quant/floatengine's packed GEMM (forward W*col, weight deltas
// delta*col^T, input deltas W^T*delta then col2im), one image at a time with the GEMMs
// split over the cores, so the result does not depend on the thread count. Mini-batches
// are prepared (decoded, augmented) in a goroutine ahead of the compute, each from a
// generator seeded by its index, which makes a resumed run repeat an uninterrupted one.
package train
