#!/usr/bin/env bash
# The board's CPU cost per frame, counted in ARM instructions: builds pynqctl for armv7,
# runs `pynqctl bench board` (the agent's per-frame work, the simulated engine in the
# FPGA's place) under qemu-arm with the armcount plugin (scripts/armcount), for a 640x480
# JPEG (a webcam's MJPEG) and a 640x480 YUYV frame, and prints per stage the
# instructions per frame (the simulation's own packages left out), the Cortex-A9 time
# estimate and the pipeline's frame-rate estimate on the A9's two cores.
#
# Each stage is counted alone: `--only STAGE` repeats it, and a 1-frame run subtracted
# from an (N+1)-frame run leaves N repetitions (start-up and the other stages cancel).
# GOMAXPROCS=1: the plugin's counters are not atomic, and guest threads running at once
# would lose counts; the instructions are the same on one core, the estimate splits them
# over two.
#
# Usage: scripts/board-cost.sh [MODEL_DIR [IMAGE]]   (defaults: the published
# Tinier-YOLO and dog.jpg of ../shared/fixtures/qnn-mo-pynq). Env: FRAMES (default 3),
# MHZ (650), CPI (1.5).
#
# The counts are exact; times are estimates: instructions x CPI / 650 MHz. CPI 1.5
# because the stages are scalar Go code (no NEON from the compiler, bounds checks, many
# loads and stores) on a partly dual-issue core whose 512 KB L2 is far smaller than the
# frame and engine buffers they stream through.
set -euo pipefail
cd "$(dirname "$0")/.."
fix=${PYNQ_FIXTURES:-../shared/fixtures}/qnn-mo-pynq
model=${1:-$fix/params}
image=${2:-$fix/images/dog.jpg}
frames=${FRAMES:-3}
mhz=${MHZ:-650}
cpi=${CPI:-1.5}
names=()
[ -f "$fix/voc.names" ] && names=(--names "$fix/voc.names")
bit=()
[ -f "$fix/bitstream/W1A3-pynqZ1-Z2.bit" ] && bit=(--bitstream "$fix/bitstream/W1A3-pynqZ1-Z2.bit")
[ -d "$model" ] && [ -f "$image" ] || { echo "board-cost: need a model dir and an image (got $model, $image)" >&2; exit 2; }

if ! command -v qemu-arm >/dev/null || ! command -v gcc >/dev/null; then
	if [ "$(id -u)" -eq 0 ]; then
		apt-get install -y -qq --no-install-recommends qemu-user gcc >/dev/null
	else
		echo "board-cost: needs Debian's qemu-user (the dynamic qemu-arm; qemu-user-static cannot load plugins) and gcc" >&2
		exit 2
	fi
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -shared -fPIC -fvisibility=hidden -o "$work/armcount.so" scripts/armcount/armcount.c
GOOS=linux GOARCH=arm GOARM=7 CGO_ENABLED=0 go build -trimpath -o "$work/pynqctl" ./cmd/pynqctl

# The simulation's own code is not the board's: the FPGA model, the simulated DDR and
# its allocator (on the board a sync is the kernel's cache maintenance).
exclude='^github.com/fpgadetector/pynq-agent/(overlay/sim|dma/simdma)\.|^github.com/fpgadetector/pynq-agent/dma\.\(\*Sim|^github.com/fpgadetector/pynq-agent/dma\.(NewSim|Sim)'
stages=(decode letterbox first engine last nms encode)

count() { # count SOURCE_FLAGS STAGE -> instructions per frame
	local src=$1 stage=$2
	# shellcheck disable=SC2086 # the source flags are two words
	GOMAXPROCS=1 qemu-arm -plugin "$work/armcount.so,out=$work/one.txt" "$work/pynqctl" bench board --model "$model" \
		"${names[@]}" "${bit[@]}" $src --frames 1 --only "$stage" "$image" >/dev/null 2>&1
	# shellcheck disable=SC2086
	GOMAXPROCS=1 qemu-arm -plugin "$work/armcount.so,out=$work/more.txt" "$work/pynqctl" bench board --model "$model" \
		"${names[@]}" "${bit[@]}" $src --frames $((frames + 1)) --only "$stage" "$image" >/dev/null 2>&1
	python3 scripts/armcount/armcount.py "$work/pynqctl" "$work/more.txt" --minus "$work/one.txt" \
		--frames "$frames" --exclude "$exclude" --total
}

engine_ms=$(go run ./cmd/pynqctl bench board --model "$model" "${names[@]}" "${bit[@]}" --frames 1 "$image" 2>/dev/null |
	awk '/^engine on the board/ {print $5}')
echo "model $model, image $image; engine on the board (cycle model): $engine_ms ms"
echo "A9 estimate: instructions x CPI $cpi / $mhz MHz; $frames frame(s) per stage counted"
for src in "--size 640x480" "--yuyv 640x480"; do
	echo
	echo "== source: ${src#--} $( [ "$src" = "--size 640x480" ] && echo "(JPEG)" || echo "(raw YUYV)")"
	declare -A n=()
	for s in "${stages[@]}"; do
		n[$s]=$(count "$src" "$s")
	done
	python3 - "$mhz" "$cpi" "$engine_ms" "${n[decode]}" "${n[letterbox]}" "${n[first]}" "${n[engine]}" \
		"${n[last]}" "${n[nms]}" "${n[encode]}" <<'PY'
import sys
mhz, cpi, engine = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
names = ["decode", "letterbox", "first", "engine", "last", "nms", "encode"]
thread = {"decode": "prepare", "letterbox": "prepare", "first": "prepare", "engine": "engine",
          "last": "finish", "nms": "finish", "encode": "feed"}
n = dict(zip(names, map(int, sys.argv[4:])))
ms = lambda i: i * cpi / (mhz * 1e3)
print("%-10s %14s %10s  %s" % ("stage", "instructions", "A9 ms", "thread"))
for s in names:
    note = " (the driver's CPU work; the engine itself is %.1f ms)" % engine if s == "engine" else ""
    print("%-10s %12.1f M %10.1f  %s%s" % (s, n[s] / 1e6, ms(n[s]), thread[s], note))
total = sum(n.values())
print("%-10s %12.1f M %10.1f" % ("all CPU", total / 1e6, ms(total)))
per = {}
for s in names:
    per[thread[s]] = per.get(thread[s], 0.0) + ms(n[s])
per["engine"] += engine  # the engine thread waits for the engine after its CPU work
print("threads (ms per frame): " + ", ".join("%s %.1f" % (k, v) for k, v in per.items()))
# The agent's pipeline runs prepare, engine, finish and feed as goroutines on two cores:
# a frame rate is bound by its busiest thread (the engine thread waits for the engine)
# and by all CPU work shared over both cores.
for label, eng in (("cycle model", engine), ("published QNN-MO time", 106.0)):
    per["engine"] = ms(n["engine"]) + eng
    bound = max(max(per.values()), ms(total) / 2)
    which = max(per, key=per.get) if max(per.values()) >= ms(total) / 2 else "both cores busy"
    print("estimate with the engine at %.1f ms (%s): %.1f frames/s on two A9 cores (bound: %s, %.1f ms); the engine alone allows %.1f" %
          (eng, label, 1000 / bound, which, bound, 1000 / eng))
PY
done
