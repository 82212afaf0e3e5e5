#!/usr/bin/env bash
# Boots the board VM (building its image first if needed, see build.sh) and waits for
# ssh. Prints the run directory; stop.sh RUNDIR shuts it down.
#
# Usage: scripts/board-vm/boot.sh [SSH_PORT [HTTP_PORT]]   (defaults 2222 and 18080)
#
# QEMU -M virt with a Cortex-A15 (armv7, like the PYNQ-Z2's A9 to the kernel's eyes),
# 2 CPUs and 512 MiB, as the board. Disk writes go to a throw-away qcow2 overlay in the
# run directory, so the cached image stays pristine. User-mode networking with
# restrict=on: the guest reaches nothing; only 127.0.0.1:SSH_PORT -> 22 and
# 127.0.0.1:HTTP_PORT -> 8080 (the agent) are forwarded. The console goes to
# RUNDIR/console.log. Boot to ssh takes about a minute (TCG emulation).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ssh_port=${1:-2222}
http_port=${2:-18080}
img=$("$here/build.sh")
run=$(mktemp -d /tmp/board-vm.XXXXXX)
echo "$img" >"$run/image"
echo "$ssh_port" >"$run/ssh_port"
echo "$http_port" >"$run/http_port"
qemu-img create -q -f qcow2 -F raw -b "$img/rootfs.ext4" "$run/disk.qcow2"
qemu-system-arm -M virt -cpu cortex-a15 -smp 2 -m 512M \
	-kernel "$img/vmlinuz" -initrd "$img/initrd.img" -append "root=/dev/vda rw console=ttyAMA0" \
	-drive if=none,file="$run/disk.qcow2",format=qcow2,id=hd -device virtio-blk-device,drive=hd \
	-netdev user,id=net,restrict=on,hostfwd=tcp:127.0.0.1:"$ssh_port"-:22,hostfwd=tcp:127.0.0.1:"$http_port"-:8080 \
	-device virtio-net-device,netdev=net \
	-display none -serial file:"$run/console.log" -daemonize -pidfile "$run/qemu.pid"
start=$SECONDS
until "$here/ssh.sh" "$run" true 2>/dev/null; do
	if ! kill -0 "$(cat "$run/qemu.pid")" 2>/dev/null; then
		echo "board-vm: QEMU exited during boot; console: $run/console.log" >&2
		exit 1
	fi
	if ((SECONDS - start > 300)); then
		echo "board-vm: no ssh after 300 s; console: $run/console.log" >&2
		"$here/stop.sh" "$run" || true
		exit 1
	fi
	sleep 3
done
echo "board-vm: ssh ready on 127.0.0.1:$ssh_port after $((SECONDS - start)) s" >&2
echo "$run"
