#!/usr/bin/env bash
# Runs a command on the board VM as root: scripts/board-vm/ssh.sh RUNDIR [COMMAND...]
# (USER=xilinx for the PYNQ user). The key is the image's; host keys are not kept
# (every boot is a fresh overlay of the same image).
set -euo pipefail
run=$1
shift
exec ssh -q -i "$(cat "$run/image")/id_ed25519" -p "$(cat "$run/ssh_port")" \
	-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 -o BatchMode=yes \
	"${BOARD_VM_USER:-root}@127.0.0.1" "$@"
