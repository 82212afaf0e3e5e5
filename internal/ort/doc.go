// Package ort owns the onnxruntime harness of the tests and benchmarks: it finds the
// libonnxruntime.so that scripts/install-onnxruntime.sh installs, and runs an ONNX
// model file on one float input through github.com/yalue/onnxruntime_go (cgo; builds
// without cgo leave this package out).
//
// Without cgo the package is empty, so CGO_ENABLED=0 builds of ./... still succeed.
package ort
