package main

import (
	"errors"
	"log/slog"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit status (e.g. 3 for a failed accuracy gate).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func newRootCmd(log *slog.Logger) *cobra.Command {
	root := &cobra.Command{
		Use:           "pynqctl",
		Short:         "Host tools for the FPGADetector chair detector on PYNQ-Z2",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	_ = log
	return root
}
