#!/bin/sh
# Stand-in for systemctl and journalctl in the deploy tests: runs the unit's ExecStart in
# the background on this machine with a pid file, and keeps its output in a log file.
# Usage: servicectl.sh STATEDIR UNITDIR systemctl ARGS...   (systemctl stand-in)
#        servicectl.sh STATEDIR UNITDIR journalctl ARGS...  (journalctl stand-in)
state=$1 unitdir=$2 tool=$3
shift 3
mkdir -p "$state"

alive() { [ -f "$state/$1.pid" ] && running "$(cat "$state/$1.pid")"; }

# running treats a zombie as gone: an orphan waits for a slow init to reap it.
running() {
	kill -0 "$1" 2>/dev/null || return 1
	read -r line <"/proc/$1/stat" 2>/dev/null || return 1
	st=${line##*) }
	[ "${st%% *}" != Z ]
}

stop() {
	if [ -f "$state/$1.pid" ]; then
		pid=$(cat "$state/$1.pid")
		kill "$pid" 2>/dev/null
		i=0
		while running "$pid" && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
		running "$pid" && kill -9 "$pid" 2>/dev/null
		rm -f "$state/$1.pid"
	fi
}

start() {
	unit="$unitdir/$1.service"
	exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
	wd=$(sed -n 's/^WorkingDirectory=//p' "$unit")
	[ -n "$exec_start" ] || { echo "no ExecStart in $unit" >&2; exit 1; }
	cd "${wd:-/}" || exit 1
	echo "-- starting $exec_start" >>"$state/$1.log"
	# shellcheck disable=SC2086 # ExecStart is split into words like systemd does
	setsid $exec_start >>"$state/$1.log" 2>&1 </dev/null &
	echo $! >"$state/$1.pid"
}

service_name() { echo "${1%.service}"; }

if [ "$tool" = journalctl ]; then
	svc="" n=10 follow=""
	while [ $# -gt 0 ]; do
		case $1 in
		-u) svc=$(service_name "$2"); shift ;;
		-n) n=$2; shift ;;
		-f) follow=1 ;;
		esac
		shift
	done
	touch "$state/$svc.log"
	if [ -n "$follow" ]; then exec tail -n "$n" -f "$state/$svc.log"; fi
	exec tail -n "$n" "$state/$svc.log"
fi

cmd=$1
svc=$(service_name "${2:-}")
case $cmd in
--version) echo "servicectl test shim" ;;
daemon-reload|enable|disable) ;;
start) alive "$svc" || start "$svc" ;;
stop) stop "$svc" ;;
restart) stop "$svc"; start "$svc" ;;
is-active)
	if alive "$svc"; then echo active; else echo inactive; exit 3; fi ;;
*) echo "servicectl: unsupported: $cmd" >&2; exit 1 ;;
esac
