#!/usr/bin/env bash
# Installs what the tests compare against or talk to, on a fresh Debian/Ubuntu machine:
# Debian's darknet (the original float implementation), python3-onnx (onnx.checker),
# qemu-user-static (ARM unit tests), openssh-server and sudo (deploy tests), djpeg (JPEG decoding
# reference), libstb-dev (stb_image, darknet's decoder without OpenCV) and onnxruntime
# from npm. Idempotent and quiet when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(darknet chromium python3-onnx qemu-user-static openssh-server sudo libjpeg-turbo-progs libstb-dev device-tree-compiler)
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

# The deploy tests also log in as a user that is not root and becomes root with sudo, as
# the xilinx user of a PYNQ image does. The account has no password and no home: only the
# tests' own sshd (127.0.0.1, keys made per test) lets it in.
if [ "$(id -u)" -eq 0 ] && command -v sudo >/dev/null && ! id pynq-deploy-test >/dev/null 2>&1; then
	useradd --system --no-create-home --shell /bin/sh pynq-deploy-test
	usermod -p '*' pynq-deploy-test # not locked (sshd without PAM refuses locked accounts)
	echo 'pynq-deploy-test ALL=(root) NOPASSWD: ALL' >/etc/sudoers.d/pynq-deploy-test
	chmod 440 /etc/sudoers.d/pynq-deploy-test
fi

if [ -x scripts/install-onnxruntime.sh ]; then
	scripts/install-onnxruntime.sh >/dev/null
fi
