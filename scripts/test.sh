#!/usr/bin/env bash
# The project's test command: installs the test references, then runs every test,
# including the comparison with Debian's darknet (build tag "darknet", cgo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
go test -count=1 ./...
if [ -f /usr/lib/darknet/include/darknet.h ]; then
	QT_QPA_PLATFORM=offscreen go test -count=1 -tags darknet ./quant/darknetref/
else
	echo "skip: darknet comparison (Debian package darknet is not installed)"
fi
