// Package agent owns the board daemon: its TOML config, lifecycle, frame sources, the
// detection pipeline, health, metrics and status LEDs.
package agent
