#!/usr/bin/env bash
# End-to-end tests against the emulated board (issue 18): boots scripts/board-vm (building
# its image on first use, about 4-7 minutes, cached afterwards), runs the tests of
# deploy/boardvm against it and shuts it down. Needs root (the image build) and the
# shared fixtures beside the checkout. Not part of .ci/run: a run takes minutes.
#
# Usage: scripts/test-board-vm.sh [go test flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
run=$(scripts/board-vm/boot.sh "${BOARD_VM_SSH_PORT:-2222}" "${BOARD_VM_HTTP_PORT:-18080}")
trap 'scripts/board-vm/stop.sh "$run"' EXIT
BOARD_VM_RUN=$run go test -count=1 -timeout 30m -v "$@" ./deploy/boardvm/
