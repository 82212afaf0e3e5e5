#!/usr/bin/env bash
# Builds the board VM (issue 18): a PYNQ-like armhf Debian bookworm root filesystem with
# systemd, sshd and a `xilinx` user with sudo (password xilinx, as on PYNQ images), the
# armmp kernel and an initrd, from Debian packages only, plus the project's emulated FPGA
# manager (pynq-fpga/, built in the image against its kernel's headers, loaded at boot)
# and the vivid test camera (/dev/video0, loaded at boot). Prints the image directory.
#
# The image is cached outside the clone, keyed by the content of these scripts, so
# that CI and later runs on the same machine reuse it: $BOARD_VM_CACHE (default
# /var/cache/pynq-board-vm)/KEY/{vmlinuz,initrd.img,rootfs.ext4,id_ed25519}. Building
# takes about 7 minutes on a quiet 2-core machine (debootstrap's second stage runs the
# guest's binaries under qemu-user). Needs root (debootstrap, chroot, binfmt_misc).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
key=$(cat "$here"/build.sh "$here"/pynq-fpga/* | sha256sum | cut -c1-16)
cache=${BOARD_VM_CACHE:-/var/cache/pynq-board-vm}/$key
if [ -f "$cache/done" ]; then
	echo "$cache"
	exit 0
fi
log() { echo "board-vm: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "building the image needs root (debootstrap, chroot)"; exit 2; }

packages=(qemu-system-arm qemu-user-static binfmt-support debootstrap qemu-utils e2fsprogs openssh-client)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
	log "installing ${packages[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
# The guest's binaries run under qemu-arm through binfmt_misc (F: found inside the chroot).
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
	mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-arm >/dev/null 2>&1 || true
[ -e /proc/sys/fs/binfmt_misc/qemu-arm ] || { log "qemu-arm is not registered with binfmt_misc (update-binfmts --enable qemu-arm)"; exit 2; }

# Images of older scripts and interrupted builds are of no more use.
find "$(dirname "$cache")" -mindepth 1 -maxdepth 1 ! -name "$key" ! -name "$key.partial" -exec rm -rf {} + 2>/dev/null || true

mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
work="$cache.partial"
rm -rf "$work"
mkdir -p "$work"
root="$work/rootfs"

log "debootstrap (armhf bookworm from $mirror)"
debootstrap --arch=armhf --variant=minbase \
	--include=systemd-sysv,dbus,openssh-server,sudo,iproute2,udev,kmod,procps,ca-certificates,netbase,busybox \
	bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }

log "kernel, initrd, users, ssh, network"
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
SOURCES
cp -r "$here/pynq-fpga" "$root/tmp/pynq-fpga"
ssh-keygen -q -t ed25519 -N '' -C board-vm -f "$work/id_ed25519"
chroot "$root" /bin/sh -eu <<'CHROOT' >"$work/chroot.log" 2>&1 || { tail -20 "$work/chroot.log" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends initramfs-tools zstd
# A small initrd: only what -M virt needs to mount the root disk.
sed -i 's/^MODULES=.*/MODULES=list/; s/^COMPRESS=.*/COMPRESS=zstd/' /etc/initramfs-tools/initramfs.conf
printf 'virtio_mmio\nvirtio_blk\nvirtio_net\next4\n' >>/etc/initramfs-tools/modules
apt-get install -y -qq --no-install-recommends linux-image-armmp
# The emulated FPGA manager, built here so that its modpost is the armhf one (Debian's
# amd64 kbuild assumes 64-bit struct sizes); the compiler leaves with the build.
kver=$(ls /lib/modules)
apt-get install -y -qq --no-install-recommends "linux-headers-$kver" gcc make
make -C "/usr/src/linux-headers-$kver" M=/tmp/pynq-fpga modules
install -D -m 644 /tmp/pynq-fpga/pynq_fpga.ko "/lib/modules/$kver/extra/pynq_fpga.ko"
depmod "$kver"
rm -rf /tmp/pynq-fpga
apt-get purge -y -qq --autoremove "linux-headers-$kver" gcc make
printf 'pynq_fpga\nvivid\n' >/etc/modules-load.d/pynq-board.conf
# One vivid device with only a video capture node, so that it is /dev/video0.
echo 'options vivid n_devs=1 node_types=0x1' >/etc/modprobe.d/vivid.conf
useradd -m -s /bin/bash -G sudo xilinx
echo 'xilinx:xilinx' | chpasswd
echo 'root:root' | chpasswd
echo pynq >/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 pynq\n' >/etc/hosts
echo '/dev/vda / ext4 defaults 0 1' >/etc/fstab
mkdir -p /etc/systemd/network
printf '[Match]\nName=e*\n\n[Network]\nDHCP=yes\n' >/etc/systemd/network/20-dhcp.network
systemctl enable systemd-networkd ssh
systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer 2>/dev/null || true
apt-get clean
rm -rf /var/lib/apt/lists/*
CHROOT
for home in "$root/root" "$root/home/xilinx"; do
	install -d -m 700 "$home/.ssh"
	install -m 600 "$work/id_ed25519.pub" "$home/.ssh/authorized_keys"
done
chroot "$root" chown -R xilinx:xilinx /home/xilinx/.ssh
cp "$root"/boot/vmlinuz-* "$work/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/initrd.img"

log "root filesystem image"
mkfs.ext4 -q -L rootfs -d "$root" "$work/rootfs.ext4" 2G >/dev/null
rm -rf "$root"
touch "$work/done"
rm -rf "$cache"
mv "$work" "$cache"
echo "$cache"
