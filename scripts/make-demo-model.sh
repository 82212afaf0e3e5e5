#!/bin/sh
# Reproduces agent/demomodel/chair-demo, pynq-agent's built-in chair detector:
# synthetic scenes -> float training -> quantization-aware fine-tuning (W1A3, with the
# PTQ-vs-QAT report) -> QNN-MO parameter directory. Training is on the CPU; the wall
# times on 2 shared cores are in the agent/demomodel package doc. Needs nothing from
# outside the repository.
#
#   scripts/make-demo-model.sh [WORK_DIR]     (default /tmp/pynq-demo-model)
#
# Then the figures: held-out synthetic AP, and AP on real photos when the shared
# fixtures are there (../shared/fixtures/chairs/val).
set -eu
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/pynq-demo-model}
mkdir -p "$WORK"
go build -o "$WORK/pynqctl" ./cmd/pynqctl
P="$WORK/pynqctl"
CFG=scripts/demo-model

# 4000 training + 300 validation scenes, 224x224 (the model's input size).
"$P" dataset synth --out "$WORK/data" --count 4300 --seed 7 --size 224 --val-fraction 0.0698 --force

# Float training from darknet's random initialisation: 1600 iterations of 32 images
# (chair-demo-float.cfg's [net]: lr 0.004, burn_in 100, steps 1200,1450).
"$P" train --cfg $CFG/chair-demo-float.cfg --data "$WORK/data/train.txt" --val "$WORK/data/val.txt" \
	--out "$WORK/float" --seed 7 --checkpoint-every 200

# Quantization-aware fine-tuning from the float weights (chair-demo.cfg: the same
# network, lr 0.002, burn_in 50, 800 iterations): conv1..5 binary, 3-bit activations with
# MSE-calibrated then learned (PACT) clipping. Before it, the float model goes through
# the flow as it is (post-training quantization); after it, the QAT model with its
# trained scales; $WORK/qat/qat_report.{json,html} compares them on the val scenes.
# Exit status 3 (QAT still below the accuracy gate) is reported, not fatal.
"$P" quant qat --cfg $CFG/chair-demo.cfg --weights "$WORK/float/chair-demo-float_final.weights" \
	--data "$WORK/data/train.txt" --val "$WORK/data/val" --outdir "$WORK/qat" --seed 8 \
	--checkpoint-every 100 --learn-clip || [ $? -eq 3 ]

# Batch norm + trained scales -> integer thresholds; the QNN-MO directory.
rm -rf "$WORK/chair-demo"
"$P" quant qnn-dir --cfg "$WORK/qat/train/chair-demo-qat.cfg" \
	--weights "$WORK/qat/train/chair-demo_final.weights" --sidecar "$WORK/qat/train/chair-demo.quant.json" \
	--out "$WORK/chair-demo" --name chair-demo
rm -rf agent/demomodel/chair-demo
cp -r "$WORK/chair-demo" agent/demomodel/chair-demo

# Figures: AP@0.5 (VOC2012) of the QNN-MO model on held-out scenes of another seed, on
# the val split, and on the real photos of the shared fixtures if present; and PTQ vs
# QAT (through the QONNX flow) on the real photos.
NAMES=agent/demomodel/chair.names
"$P" dataset synth --out "$WORK/heldout" --count 200 --seed 1001 --size 224 --val-fraction 0 --force
evaluate() { # name, ground truth (darknet-form dir); its images
	"$P" detect --model agent/demomodel/chair-demo --names "$NAMES" --thresh 0.005 --json "$2"/*.jpg >"$WORK/$1.jsonl"
	echo "== $1"
	"$P" eval --gt "$2" --detections "$WORK/$1.jsonl" --names "$NAMES"
}
evaluate heldout-seed1001 "$WORK/heldout/train"
evaluate val-split "$WORK/data/val"
REAL=../shared/fixtures/chairs/val
if [ -d $REAL ]; then
	evaluate real-photos $REAL
	for q in ptq/chair-demo qat/chair-demo-qat; do
		echo "== $q on the real photos"
		"$P" quant verify --model "$WORK/qat/$q-w1a3-calibrated.onnx" --float "$WORK/qat/ptq/chair-demo.onnx" \
			--dataset $REAL --names "$NAMES" --output "$WORK/real-$(dirname $q).json" --max-drop 100
	done
fi
