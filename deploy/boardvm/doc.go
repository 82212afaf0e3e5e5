// Package boardvm holds the end-to-end tests that run against the emulated board of
// scripts/board-vm (an armhf Debian with systemd, sshd and a sudo user, under QEMU):
// scripts/test-board-vm.sh boots it, points the tests at it with BOARD_VM_RUN, and
// shuts it down. Without BOARD_VM_RUN they skip. The package has no code of its own.
package boardvm
