#!/usr/bin/env bash
# The project's test command: installs the test references, then runs every test,
# including the comparisons with Debian's darknet (build tag "darknet", cgo) and with
# stb_image (build tag "stb", cgo, libstb-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
go test -count=1 ./...
if [ -f /usr/lib/darknet/include/darknet.h ]; then
	QT_QPA_PLATFORM=offscreen go test -count=1 -tags darknet ./quant/darknetref/
else
	echo "skip: darknet comparison (Debian package darknet is not installed)"
fi
if [ -f /usr/include/stb/stb_image.h ]; then
	go test -count=1 -tags stb ./quant/imageio/ ./quant/qnnmo/ ./quant/detector/
else
	echo "skip: stb_image comparison (Debian package libstb-dev is not installed)"
fi
