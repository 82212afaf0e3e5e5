#!/usr/bin/env bash
# Float engine speed next to the references, in one run: onnxruntime (1 and 2 intra-op
# threads) and the float engine on Yolo-Fastest (320x320) and a Tinier-YOLO-shaped model
# (416x416), then Debian's darknet (single-threaded build) and the engine on the same
# networks. Prints the benchmark lines and a table of ratios. Run on an idle machine.
#   scripts/bench-float.sh [benchtime, default 10x]
set -euo pipefail
cd "$(dirname "$0")/.."
bt=${1:-10x}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run '^$' -bench 'Inference' -benchtime "$bt" ./quant/onnx | tee -a "$out"
if [ -f /usr/lib/darknet/include/darknet.h ]; then
	QT_QPA_PLATFORM=offscreen go test -tags darknet -run '^$' -bench 'DarknetPredict|EngineForward' \
		-benchtime "$bt" ./quant/darknetref | tee -a "$out"
fi
echo
echo "images/s and ratios (engine / reference; > 1 means the engine is faster)"
awk '
/images\/s/ {
	for (i = 1; i <= NF; i++) if ($(i) == "images/s") v = $(i-1)
	name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
	ips[name] = v; order[++n] = name
}
END {
	for (k = 1; k <= n; k++) printf "  %-55s %8.2f\n", order[k], ips[order[k]]
	print ""
	split("yolo-fastest tinier-yolo", models, " ")
	for (mi in models) {
		m = models[mi]
		for (t = 1; t <= 2; t++) {
			e = ""; o = ""
			for (k in ips) {
				if (index(k, "Inference/" m "/engine/threads=" t)) e = ips[k]
				if (index(k, "Inference/" m "/onnxruntime/threads=" t)) o = ips[k]
			}
			if (e != "" && o != "") printf "  %-12s threads=%d  engine/onnxruntime = %.2f\n", m, t, e / o
		}
		d = ""; f = ""
		for (k in ips) {
			if (index(k, "DarknetPredict/") && index(k, m)) d = ips[k]
			if (index(k, "EngineForward/") && index(k, m)) f = ips[k]
		}
		if (d != "" && f != "") printf "  %-12s engine (all cores) / darknet (1 thread) = %.2f\n", m, f / d
	}
}' "$out"
