// Package deploy owns releases on the board over SSH/SFTP: upload, systemd unit, health
// check and rollback.
//
// Board layout (Layout; every path and command is configurable so tests run anywhere):
//
//	/opt/pynq-agent/releases/<version>/   pynq-agent, agent.toml, X.bit, X.hwh, model/...,
//	                                      manifest.sha256, .complete (, .failed)
//	/opt/pynq-agent/current -> releases/<version>
//	/etc/systemd/system/pynq-agent.service
//
// A version is "<UTC yyyymmdd-hhmmss.mmm>-<content hash>", so names sort by age. Deploy
// (1) detects the board's facts (uname -m, df, systemctl, id -u / sudo -n) and refuses
// what it cannot serve before changing anything; (2) removes partial releases an
// interrupted upload left, holding <base>/.deploy.lock (flock, released with the SSH
// session, so a dropped connection never leaves it stuck); (3) hard-links files whose
// SHA-256 an earlier complete release already has and uploads the rest over SFTP, all
// under .part names; (4) checks every digest on the board with sha256sum, renames into
// place, writes the manifest, syncs and only then writes .complete; (5) installs the
// unit when it changed (daemon-reload, enable); (6) points current at the release
// (symlink to a temp name, rename), restarts and polls /healthz through the SSH
// connection (no port needs opening); a release that does not answer in time is marked
// .failed, current goes back, the old release is restarted and a *HealthError carries
// the new release's last journal lines; (7) keeps the newest Options.Keep complete
// releases.
//
// The agent's side of the contract: `pynq-agent -version` prints its version on one
// line; GET /healthz answers 200 "ok <version>"; GET /api/status answers JSON (version,
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
