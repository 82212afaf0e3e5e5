package main

import (
	"context"
	"log/slog"
)

// agentLogLevel is the least level of the in-process agent's log lines (bench board,
// verify --board sim): its start-up INFO lines are not the command's output, so only
// warnings show unless --verbose.
var agentLogLevel = func() *slog.LevelVar {
	v := new(slog.LevelVar)
	v.Set(slog.LevelWarn)
	return v
}()

// verbose is --verbose: per-layer detail in the quantization steps' output, and the log
// of an in-process agent.
var verbose bool

// agentLog is log for an agent the command runs in its own process.
func agentLog(log *slog.Logger) *slog.Logger {
	return slog.New(minLevel{log.Handler(), agentLogLevel})
}

// minLevel drops the records below min.
type minLevel struct {
	slog.Handler
	min slog.Leveler
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min.Level() && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
