#!/bin/sh
# Stand-in for sudo in the deploy tests: -n always fails (a password is required); -S
# reads one line from stdin, wants "secret", and runs the command with the rest of stdin.
case $1 in
-n) echo "sudo: a password is required" >&2; exit 1 ;;
-S)
	shift
	if [ "$1" = -p ]; then shift 2; fi
	IFS= read -r pw
	[ "$pw" = secret ] || { echo "sudo: incorrect password" >&2; exit 1; }
	exec "$@" ;;
esac
echo "fakesudo: unsupported: $*" >&2
exit 1
