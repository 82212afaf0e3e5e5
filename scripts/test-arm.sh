#!/usr/bin/env bash
# Runs the unit tests as armv7 binaries (the board's architecture) under qemu-user.
# -short: heavy model tests skip, the emulation is 10-30x slower than the host.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-arm-static >/dev/null; then
	echo "skip: ARM tests (qemu-arm-static not installed: apt-get install qemu-user-static)"
	exit 0
fi
GOOS=linux GOARCH=arm GOARM=7 CGO_ENABLED=0 go test -short -count=1 -exec qemu-arm-static ./...
