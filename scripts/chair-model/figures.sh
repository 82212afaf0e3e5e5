#!/bin/sh
# Chair AP@0.5 (VOC2012 all-point, `pynqctl eval`) of the chair model and its anchors
# on chairs/val and on the held-out COCO photos of make-chair-model.sh.
#
#   scripts/chair-model/figures.sh WORK_DIR        (make-chair-model.sh's work directory)
#
# Each model runs as `pynqctl detect` runs it (thresh 0.005 as darknet's valid; JPEG
# decoding: stb for parameter directories, libjpeg for darknet models). The W1A3 model
# also goes through `pynqctl verify --board sim`: the agent's board path on the FPGA
# simulation, compared bit-exactly with the host reference.
set -eu
cd "$(dirname "$0")/../.."
WORK=$(cd "$1" && pwd)
FIX=$(cd "${FIXTURES:-../shared/fixtures}" && pwd)
P="$WORK/pynqctl"
NAMES=scripts/chair-model/chair.names
VAL="$FIX/chairs/val"
TEST="$WORK/data/coco-test/list.txt"
OUT="$WORK/figures"
mkdir -p "$OUT"

images() { # dataset -> its image paths
	case "$1" in
	*.txt) grep -v '^#' "$1" ;;
	*) ls "$1"/*.jpg ;;
	esac
}
chair_ap() { # eval --json on stdin -> chair AP in percent
	python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.2f" % (100*[c["ap"] for c in r["classes"] if c["class"]=="chair"][0]))'
}
ap() { # name, dataset, names file, detect model flags...
	name=$1 ds=$2 names=$3
	shift 3
	# shellcheck disable=SC2046
	"$P" detect "$@" --names "$names" --thresh 0.005 --json $(images "$ds") >"$OUT/$name.jsonl"
	"$P" eval --dataset "$ds" --detections "$OUT/$name.jsonl" --names "$names" --json | chair_ap
}
row() { # label, names file, detect model flags...
	label=$1
	shift
	printf '%-44s %8s %10s\n' "$label" "$(ap "$label-val" "$VAL" "$@")" "$(ap "$label-test" "$TEST" "$@")"
}

printf '%-44s %8s %10s\n' model chairs/val coco-test
row "yolo-fastest-1.1 (float, COCO)" "$FIX/yolo-fastest/coco.names" \
	--cfg "$FIX/yolo-fastest/yolo-fastest-1.1.cfg" --weights "$FIX/yolo-fastest/yolo-fastest-1.1.weights"
row "qnn-mo tinier-yolo (W1A3, VOC)" "$FIX/qnn-mo-pynq/voc.names" --model "$FIX/qnn-mo-pynq/params"
if [ -f "$WORK/float/tinier-yolo-chair.weights" ]; then
	row "tinier-yolo-chair float fine-tuned" $NAMES \
		--cfg "$WORK/float/tinier-yolo-chair.cfg" --weights "$WORK/float/tinier-yolo-chair.weights"
fi
for d in "$WORK/qat/ptq" "$WORK/guide"; do
	[ -f "$d/quantization_results.json" ] || continue
	# The flow's W1A3 model (QONNX) on both sets, via quant verify.
	for ds in "$VAL" "$TEST"; do
		"$P" quant verify --model "$d/tinier-yolo-chair-w1a3-calibrated.onnx" --float "$d/tinier-yolo-chair.onnx" \
			--dataset "$ds" --names $NAMES --output "$OUT/$(basename "$d")-$(basename "$ds" .txt).json" \
			--max-drop 100 >/dev/null || true
	done
	q() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.2f %.2f" % (100*[c["float_ap"] for c in r["classes"] if c["class"]=="chair"][0], 100*[c["quantized_ap"] for c in r["classes"] if c["class"]=="chair"][0]))' "$1"; }
	set -- $(q "$OUT/$(basename "$d")-val.json") $(q "$OUT/$(basename "$d")-list.json")
	printf '%-44s %8s %10s\n' "$(basename "$d") flow: float (QONNX)" "$1" "$3" "$(basename "$d") flow: W1A3 (QONNX)" "$2" "$4"
done
if [ -d agent/demomodel/tinier-yolo-chair ]; then
	row "tinier-yolo-chair W1A3 (host engine)" $NAMES --model agent/demomodel/tinier-yolo-chair
	for ds in "$VAL" "$TEST"; do
		"$P" verify --board sim --model agent/demomodel/tinier-yolo-chair --names $NAMES --dataset "$ds" \
			--bitstream "$FIX/qnn-mo-pynq/bitstream/W1A3-pynqZ1-Z2.bit" --output "$OUT/sim-$(basename "$ds" .txt).json" |
			tail -3
	done
fi
