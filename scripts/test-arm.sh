#!/usr/bin/env bash
# Runs the unit tests as armv7 binaries (the board's architecture) under qemu-user.
# -short: heavy model tests skip, the emulation is 10-30x slower than the host; the
# whole run takes about 2.5 minutes on 2 cores (go test runs -p = cores packages at once;
# the slowest package takes under a minute). -timeout 5m: a hung test fails well inside
# CI's 20 minutes instead of after go test's default 10 per package.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-arm-static >/dev/null; then
	echo "skip: ARM tests (qemu-arm-static not installed: apt-get install qemu-user-static)"
	exit 0
fi
GOOS=linux GOARCH=arm GOARM=7 CGO_ENABLED=0 go test -short -count=1 -timeout 5m -exec qemu-arm-static ./...
