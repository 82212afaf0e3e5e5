#!/bin/sh
# Reproduces agent/demomodel/chair-demo, pynq-agent's built-in chair detector:
# synthetic scenes -> quantization-aware training (W1A3) -> QNN-MO parameter directory.
# Training is on the CPU; on 2 shared cores it took about 30 minutes (see the numbers
# in the agent/demomodel package doc). Needs nothing from outside the repository.
#
#   scripts/make-demo-model.sh [WORK_DIR]     (default /tmp/pynq-demo-model)
#
# Then optionally (figures): held-out synthetic AP, and AP on real photos when the
# shared fixtures are there (../shared/fixtures/chairs/val).
set -eu
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/pynq-demo-model}
mkdir -p "$WORK"
go build -o "$WORK/pynqctl" ./cmd/pynqctl
P="$WORK/pynqctl"

# 2000 training + 200 validation scenes, 224x224 (the model's input size).
"$P" dataset synth --out "$WORK/data" --count 2200 --seed 7 --size 224 --val-fraction 0.0909 --force

# QAT from darknet's random initialisation: 650 iterations of 32 images (the cfg's
# [net] keys: lr 0.003, burn_in 50, steps 450,580), binary weights and 3-bit activations
# from the first batch on; writes demo-train_final.weights and demo-train.quant.json.
"$P" quant qat --cfg scripts/demo-model/demo-train.cfg --data "$WORK/data/train.txt" \
	--out "$WORK/ckpt" --seed 7 --checkpoint-every 50

# Stage 2: 400 more iterations from the stage-1 weights (demo-finetune.cfg: the same
# network, lr 0.002, no burn_in, steps 300,370) with learned clipping (PACT): the
# first-batch calibration (max / 7) leaves scales too coarse. Scales recalibrate on its
# first batch, then learn; writes demo-finetune_final.weights and demo-finetune.quant.json.
"$P" quant qat --cfg scripts/demo-model/demo-finetune.cfg --data "$WORK/data/train.txt" \
	--weights "$WORK/ckpt/demo-train_final.weights" --out "$WORK/ckpt2" --seed 8 \
	--checkpoint-every 50 --learn-clip

# Batch norm + trained scales -> integer thresholds; the QNN-MO directory.
rm -rf "$WORK/chair-demo"
"$P" quant qnn-dir --cfg scripts/demo-model/demo-finetune.cfg \
	--weights "$WORK/ckpt2/demo-finetune_final.weights" --sidecar "$WORK/ckpt2/demo-finetune.quant.json" \
	--out "$WORK/chair-demo" --name chair-demo
rm -rf agent/demomodel/chair-demo
cp -r "$WORK/chair-demo" agent/demomodel/chair-demo

# Figures: AP@0.5 (VOC2012) on held-out scenes of another seed, on the val split, and on
# the real photos of the shared fixtures if present.
NAMES=agent/demomodel/chair.names
"$P" dataset synth --out "$WORK/heldout" --count 200 --seed 1001 --size 224 --val-fraction 0 --force
evaluate() { # name, ground truth (darknet-form dir); its images
	"$P" detect --model agent/demomodel/chair-demo --names "$NAMES" --thresh 0.005 --json "$2"/*.jpg >"$WORK/$1.jsonl"
	echo "== $1"
	"$P" eval --gt "$2" --detections "$WORK/$1.jsonl" --names "$NAMES"
}
evaluate heldout-seed1001 "$WORK/heldout/train"
evaluate val-split "$WORK/data/val"
if [ -d ../shared/fixtures/chairs/val ]; then
	evaluate real-photos ../shared/fixtures/chairs/val
fi
