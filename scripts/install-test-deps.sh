#!/usr/bin/env bash
# Installs what the tests compare against or talk to, on a fresh Debian/Ubuntu machine:
# Debian's darknet (the original float implementation), python3-onnx (onnx.checker),
# qemu-user-static (ARM unit tests), openssh-server (deploy tests), djpeg (JPEG decoding
# reference), libstb-dev (stb_image, darknet's decoder without OpenCV) and onnxruntime
# from npm. Idempotent and quiet when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(darknet chromium python3-onnx qemu-user-static openssh-server libjpeg-turbo-progs libstb-dev device-tree-compiler)
# onnxruntime comes from npm: bring Debian's npm when the machine has none.
command -v npm >/dev/null || debs+=(npm)
missing=()
for p in "${debs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-test-deps: missing Debian packages: ${missing[*]} (run as root or install them; tests that need them will skip)" >&2
	else
		echo "install-test-deps: installing ${missing[*]}" >&2
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
fi

if [ -x scripts/install-onnxruntime.sh ]; then
	scripts/install-onnxruntime.sh >/dev/null
fi
