#!/usr/bin/env bash
# End-to-end tests against the emulated board (issue 18): boots scripts/board-vm (building
# its image on first use, about 7-10 minutes, cached afterwards), runs the tests of
# deploy/boardvm against it (deploy, FPGA manager, camera, feed, verification,
# telemetry, rollback), shuts it down, and ends with one line
# "board-vm: N passed, M failed, K skipped". Exit status non-zero when anything failed.
# Needs root (the image build) and the shared fixtures beside the checkout.
#
# Usage: scripts/test-board-vm.sh [go test flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
# Every test needs the shared fixtures (bitstream, photos); without them, no image or boot.
fixtures=${PYNQ_FIXTURES:-../shared/fixtures}
if [ ! -d "$fixtures/qnn-mo-pynq" ]; then
	echo "board-vm: skipped: no shared fixtures at $fixtures (set PYNQ_FIXTURES)"
	echo "board-vm: 0 passed, 0 failed, 1 skipped"
	exit 0
fi
run=$(scripts/board-vm/boot.sh "${BOARD_VM_SSH_PORT:-2222}" "${BOARD_VM_HTTP_PORT:-18080}")
trap 'scripts/board-vm/stop.sh "$run"' EXIT
echo "board-vm: booted in $((SECONDS - start)) s (image build included when it was not cached)"
log="$run/go-test.log"
set +e
BOARD_VM_RUN=$run go test -count=1 -timeout 45m -v "$@" ./deploy/boardvm/ 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# Leaf tests only: a parent's result repeats its subtests'.
awk -v status="$status" '
	/^ *--- (PASS|FAIL|SKIP): / { res[$3] = $2; names[++k] = $3 }
	END {
		for (i = 1; i <= k; i++) {
			n = names[i]; leaf = 1
			for (j = 1; j <= k; j++) if (index(names[j], n "/") == 1) leaf = 0
			if (!leaf) continue
			if (res[n] == "PASS:") p++; else if (res[n] == "FAIL:") f++; else s++
		}
		if (status != 0 && f == 0) f = 1 # the package failed to build or timed out
		printf "board-vm: %d passed, %d failed, %d skipped\n", p, f, s
	}' "$log"
exit "$status"
