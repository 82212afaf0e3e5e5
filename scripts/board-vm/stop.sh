#!/usr/bin/env bash
# Shuts the board VM of RUNDIR down cleanly (poweroff over ssh, then waits for QEMU to
# exit; kills it after 60 s) and removes the run directory with its disk overlay.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run=$1
pid=$(cat "$run/qemu.pid" 2>/dev/null || true)
"$here/ssh.sh" "$run" systemctl poweroff 2>/dev/null || true
for _ in $(seq 60); do
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
	sleep 1
done
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
	echo "board-vm: QEMU still running after poweroff; killing it" >&2
	kill "$pid"
fi
rm -rf "$run"
