// Package onnxpb holds the Go protobuf bindings of the ONNX model format, generated from
// the official schema (onnx.proto, proto2, package onnx) that Debian's python3-onnx ships.
// Nothing here is written by hand: regenerate with `go generate` after
//
//	apt-get install -y protobuf-compiler python3-onnx
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//
// The schema has no go_package option, so the M flag maps it to this package.
package onnxpb

//go:generate protoc --proto_path=/usr/lib/python3/dist-packages/onnx --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/fpgadetector/pynq-agent/quant/onnx/onnxpb onnx.proto
