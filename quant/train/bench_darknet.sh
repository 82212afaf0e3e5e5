#!/usr/bin/env bash
# Compares `pynqctl train` with Debian darknet's CPU training (`darknet detector train`)
# on the same Tinier-YOLO-shaped cfg (30 classes, leaky, float) and the same 16 images
# of the chairs fixture: seconds per iteration of 8 images and CPU seconds of the whole
# run. With a third argument, a one-class region cfg (any darknet cfg with a region head
# and relu/leaky layers), that network trains instead, at the given
# size, on 16 synthetic scenes.
# Usage: quant/train/bench_darknet.sh [size=416] [iterations=2] [CFG]
set -euo pipefail
size=${1:-416}
iters=${2:-2}
cfg=${3:+$(realpath "$3")}
repo=$(cd "$(dirname "$0")/../.." && pwd)
chairs=$repo/../shared/fixtures/chairs
command -v darknet >/dev/null || { echo "darknet not installed (apt-get install darknet)"; exit 1; }
[ -d "$chairs/val" ] || { echo "missing fixture $chairs"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$repo" && go build -o "$work/pynqctl" ./cmd/pynqctl)
mkdir -p "$work/backup"
if [ -n "$cfg" ]; then
	"$work/pynqctl" dataset synth --out "$work/synth" --count 16 --size "$size" --val-fraction 0 >/dev/null
	ls "$work"/synth/train/*.jpg >"$work/train.txt"
	printf 'classes=1\ntrain=%s\nvalid=%s\nnames=%s\nbackup=%s\n' "$work/train.txt" "$work/train.txt" \
		"$work/synth/classes.names" "$work/backup" >"$work/t.data"
	sed -e 's/^batch=.*/batch=8/' -e 's/^subdivisions=.*/subdivisions=1/' -e "s/^max_batches=.*/max_batches=$iters/" \
		-e 's/^policy=.*/policy=constant/' -e "s/^width=.*/width=$size/" -e "s/^height=.*/height=$size/" "$cfg" >"$work/tinier.cfg"
else
	ls "$chairs"/val/*.jpg | head -16 >"$work/train.txt"
	printf 'classes=30\ntrain=%s\nvalid=%s\nnames=%s\nbackup=%s\n' "$work/train.txt" "$work/train.txt" \
		"$chairs/classes.names" "$work/backup" >"$work/t.data"
	conv() { printf '[convolutional]\n%sfilters=%s\nsize=%s\nstride=%s\npad=1\nactivation=%s\n\n' "$1" "$2" "$3" "$4" "$5"; }
	pool() { printf '[maxpool]\nsize=2\nstride=%s\n\n' "$1"; }
	bn=$'batch_normalize=1\n'
	{
		printf '[net]\nbatch=8\nsubdivisions=1\nwidth=%s\nheight=%s\nchannels=3\nmomentum=0.9\ndecay=0.0005\n' "$size" "$size"
		printf 'learning_rate=0.0001\nmax_batches=%s\npolicy=constant\nhue=.1\nsaturation=1.5\nexposure=1.5\n\n' "$iters"
		conv "$bn" 16 3 2 leaky; conv "$bn" 64 3 1 leaky; pool 2; conv "$bn" 64 3 1 leaky; pool 2
		conv "$bn" 128 3 1 leaky; pool 2; conv "$bn" 256 3 1 leaky; pool 2; conv "$bn" 512 3 1 leaky; pool 1
		conv "$bn" 512 3 1 leaky; conv "$bn" 512 3 1 leaky; conv "" 175 1 1 linear
		printf '[region]\nanchors=1.08,1.19,3.42,4.41,6.63,11.38,9.42,5.11,16.62,10.52\nbias_match=1\nclasses=30\n'
		printf 'coords=4\nnum=5\nsoftmax=1\njitter=.2\nrescore=1\nobject_scale=5\nnoobject_scale=1\nclass_scale=1\ncoord_scale=1\nthresh=.6\nrandom=0\n'
	} >"$work/tinier.cfg"
fi
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== darknet detector train ($size, batch 8, $iters iterations)"
(cd "$work" && time darknet detector train t.data tinier.cfg -nogpu 2>&1 | grep -E '^[0-9]+:')
echo "== pynqctl train"
(cd "$work" && time ./pynqctl train --cfg tinier.cfg --data train.txt --out "$work/mine" 2>&1 | grep -E '^[0-9]+:')
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
