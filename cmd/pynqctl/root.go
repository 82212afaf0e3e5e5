package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fpgadetector/pynq-agent/quant/imageio"
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

// A commandFactory builds one subcommand. Each command's file registers its factory in
// an init function, so adding a command touches only that command's file.
type commandFactory func(log *slog.Logger) *cobra.Command

var (
	rootCommands  []commandFactory // pynqctl X
	quantCommands []commandFactory // pynqctl quant X
)

func newRootCmd(log *slog.Logger) *cobra.Command {
	var maxPixels int64
	root := &cobra.Command{
		Use:           "pynqctl",
		Short:         "Host tools for the FPGADetector chair detector on PYNQ-Z2",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if maxPixels < 1 || maxPixels > imageio.DefaultMaxPixels {
				return fmt.Errorf("--max-image-pixels %d: want 1..%d", maxPixels, imageio.DefaultMaxPixels)
			}
			imageio.SetMaxPixels(maxPixels)
			agentLogLevel.Set(slog.LevelWarn)
			if verbose {
				agentLogLevel.Set(slog.LevelInfo)
			}
			return nil
		},
	}
	// Decoding peaks at about 20 bytes per pixel: 16 MP (a 12 MP phone photo fits) is
	// about 320 MB; a 110 KB PNG declaring 5790x5790 pixels would take 1.3 GB.
	root.PersistentFlags().Int64Var(&maxPixels, "max-image-pixels", 16<<20, "largest image (width x height) any command decodes, checked from the header")
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "per-layer detail of the quantization steps, and the log of an agent the command runs in its own process (bench board, verify --board sim)")
	quantCmd := &cobra.Command{Use: "quant", Short: "Convert and quantize models (the quantization guide's steps)"}
	for _, f := range quantCommands {
		quantCmd.AddCommand(f(log))
	}
	root.AddCommand(quantCmd)
	for _, f := range rootCommands {
		root.AddCommand(f(log))
	}
	return root
}

// aliasFlags keeps a command's former flag names working: each old name reads as its
// new one (the vocabulary the README lists: --output for what a command writes,
// --dataset for the images it evaluates). The flags must be defined under the new names.
func aliasFlags(cmd *cobra.Command, old map[string]string) {
	cmd.Flags().SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if n, ok := old[name]; ok {
			return pflag.NormalizedName(n)
		}
		return pflag.NormalizedName(name)
	})
}
