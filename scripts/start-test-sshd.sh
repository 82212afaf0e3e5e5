#!/bin/sh
# Starts a throwaway "board" on this machine for trying pynqctl deploy/status/logs/rollback
# without a PYNQ: an sshd on a free loopback port with its own host and client keys, and
# deploy/testdata/servicectl.sh standing in for systemctl/journalctl. Prints the flags to
# pass to pynqctl and how to stop it. Needs openssh-server (/usr/sbin/sshd).
#
#   eval "$(scripts/start-test-sshd.sh /tmp/board)"   # sets BOARD_FLAGS and SSHD_PID
#   go build -o /tmp/fakeagent ./deploy/internal/fakeagent
#   printf 'listen = "127.0.0.1:18080"\n' > /tmp/board/agent.toml
#   pynqctl deploy $BOARD_FLAGS --agent-binary /tmp/fakeagent --config /tmp/board/agent.toml
#   kill $SSHD_PID
set -eu
dir=${1:-$(mktemp -d)}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
[ -x /usr/sbin/sshd ] || { echo "no /usr/sbin/sshd: apt-get install -y openssh-server" >&2; exit 1; }
[ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
[ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/id_ed25519"
cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
LogLevel ERROR
# Keep the login user's ~/.bashrc out of every command (bash reads it under sshd).
SetEnv SHLVL=1
CFG
[ "$(id -u)" != 0 ] || mkdir -p /run/sshd
/usr/sbin/sshd -f "$dir/sshd_config" -D -e </dev/null >/dev/null 2>>"$dir/sshd.log" &
pid=$!
printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1-2 "$dir/host_ed25519.pub")" >"$dir/known_hosts"
for tool in systemctl journalctl; do
	printf '#!/bin/sh\nexec sh %s %s %s %s "$@"\n' "$repo/deploy/testdata/servicectl.sh" "$dir/svc" "$dir/systemd" "$tool" >"$dir/$tool"
	chmod +x "$dir/$tool"
done
cat <<OUT
SSHD_PID=$pid
BOARD_FLAGS="--host 127.0.0.1 --port $port --user $(id -un) --identity $dir/id_ed25519 --known-hosts $dir/known_hosts --base-dir $dir/opt/pynq-agent --unit-dir $dir/systemd --systemctl $dir/systemctl --journalctl $dir/journalctl --agent-addr 127.0.0.1:18080 --allow-arch $(uname -m)"
OUT
