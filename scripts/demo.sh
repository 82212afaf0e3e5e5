#!/usr/bin/env bash
# The main job, as far as the product goes today: build pynqctl, detect objects in the
# sample photos with the Yolo-Fastest darknet model (float engine) and with the published
# W1A3 Tinier-YOLO (host reference of the FPGA engine), write annotated images, and export
# the darknet model to ONNX. Output goes to out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
fixtures=${PYNQ_FIXTURES:-../shared/fixtures}
if [ ! -d "$fixtures" ]; then
	echo "demo: no fixtures at $fixtures (set PYNQ_FIXTURES to the shared fixtures directory)" >&2
	exit 1
fi
out=out/demo
mkdir -p "$out" bin
go build -o bin/pynqctl ./cmd/pynqctl
yf=$fixtures/yolo-fastest
qnn=$fixtures/qnn-mo-pynq

echo "== Yolo-Fastest-1.1 (darknet float model) on the sample photos"
bin/pynqctl detect --cfg "$yf/yolo-fastest-1.1.cfg" --weights "$yf/yolo-fastest-1.1.weights" \
	--names "$yf/coco.names" --annotate "$out/yolo-fastest" "$qnn"/images/*.jpg

echo "== W1A3 Tinier-YOLO of QNN-MO-PYNQ (engine layers on the host reference) on dog.jpg"
bin/pynqctl detect --model "$qnn/params" --names "$qnn/voc.names" --thresh 0.3 \
	--annotate "$out/tinier-yolo-w1a3" "$qnn/images/dog.jpg"

echo "== ONNX export"
bin/pynqctl quant convert --cfg="$yf/yolo-fastest-1.1.cfg" --weights="$yf/yolo-fastest-1.1.weights" \
	--output="$out/yolo-fastest-1.1.onnx"
echo "annotated images and the ONNX model are in $out/"
