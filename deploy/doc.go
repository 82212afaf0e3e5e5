// Package deploy owns releases on the board over SSH/SFTP: upload, systemd unit, health
// check and rollback.
package deploy
