// Package deploy owns releases on the board over SSH/SFTP: upload, systemd unit, health
// check and rollback.
//
// Board layout (Layout; every path and command is configurable so tests run anywhere):
//
//	/opt/pynq-agent/releases/<version>/   pynq-agent, agent.toml, X.bit, X.hwh, model/...,
//	                                      pynq-agent.service, manifest.sha256, .complete
//	                                      (, .failed with its last log lines)
//	/opt/pynq-agent/current -> releases/<version>
//	/opt/pynq-agent/activation.json       the last switch's record (package activate)
//	/opt/pynq-agent/.upload/              a login user's uploads, when it is not root
//	/etc/systemd/system/pynq-agent.service
//
// Everything under releases/ is owned by root: the unit runs it as root, so the login
// user must not be able to change it. A version is "<UTC yyyymmdd-hhmmss.mmm>-<content
// hash>", so names sort by age. Deploy (1) detects the board's facts (uname -m, df,
// systemctl, id -u / sudo -n) and refuses what it cannot serve before changing anything;
// (2) removes partial releases an interrupted upload left, holding <base>/.deploy.lock
// (flock, released with the SSH session, so a dropped connection never leaves it stuck);
// (3) hard-links files whose SHA-256 an earlier complete release already has and uploads
// the rest over SFTP (a user who is not root uploads into .upload and root copies the
// files in), a few board processes per step rather than one per file; (4) checks every
// digest on the board with sha256sum as root, writes the manifest, syncs and only then
// writes .complete (a release without it is partial and removed by the next deploy);
// (5) starts the switch on the board, detached from the SSH session (systemd-run, or
// setsid where systemd does not run): "pynq-agent activate" of the new release takes the
// lock, installs the release's unit when it changed, points current at the release
// (symlink to a temp name, rename), restarts and polls /healthz on the board; a release
// that does not answer in time is marked .failed and the board goes back to the previous
// release on its own. The host only watches the record, so a dropped connection or an
// interrupted pynqctl leaves the board on a healthy release either way; (6) keeps the
// newest Options.Keep complete releases.
//
// The agent's side of the contract: `pynq-agent -version` prints its version on one
// line; `pynq-agent activate` is package activate's Command; GET /healthz answers 200 "ok <version>"; GET /api/status answers JSON (version,
// fps, uptime...); the unit runs it as root with Type=notify (sd_notify READY=1) and
// WatchdogSec=30 (WATCHDOG=1 pings); it reads its config from -config
// <base>/current/agent.toml and runs in <base>/current, so relative paths in the config
// resolve inside the release. An agent without -version is accepted by any "ok" answer.
//
// A login user that is not root becomes root with "sudo -n", or with "sudo -S" and
// Options.SudoPassword when sudo wants a password (the PYNQ image's xilinx user).
//
// Host keys are checked against known_hosts: an unknown host needs
// Target.AcceptNewHostKey (ErrUnknownHostKey otherwise), a changed key is always refused
// (ErrHostKeyChanged, with both fingerprints and the known_hosts line to remove).
package deploy
