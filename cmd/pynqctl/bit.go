package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/bitstream"
)

func init() { rootCommands = append(rootCommands, newBitCmd) }

func newBitCmd(log *slog.Logger) *cobra.Command {
	cmd := &cobra.Command{Use: "bit", Short: "Inspect and convert Xilinx .bit bitstreams"}
	cmd.AddCommand(newBitInfoCmd(), newBitToBinCmd(log))
	return cmd
}

func newBitInfoCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info FILE",
		Short: "Print a .bit file's header, payload size and checksums",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := bitstream.ReadInfo(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			return printBitInfo(cmd.OutOrStdout(), info)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printBitInfo(w io.Writer, i *bitstream.Info) error {
	part := "not the PYNQ-Z2's " + bitstream.PartPYNQZ2 + ": programming needs --force"
	if i.PartIsPYNQZ2 {
		part = "PYNQ-Z2"
	}
	_, err := fmt.Fprintf(w, `file:            %s
design:          %s
user id:         %s
vivado version:  %s
part:            %s (%s)
date:            %s %s
payload:         %d bytes at offset %d
sha256 (file):   %s
sha256 (payload, field e as stored in the .bit): %s
`, i.File, i.Design, orNone(i.UserID), orNone(i.Version), i.Part, part, i.Date, i.Time,
		i.PayloadBytes, i.PayloadOffset, i.FileSHA256, i.PayloadSHA256)
	return err
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func newBitToBinCmd(log *slog.Logger) *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "tobin FILE -o OUT",
		Short: "Convert a .bit to the byte-swapped .bin the Zynq FPGA manager loads from /lib/firmware",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				out = filepath.Join(filepath.Dir(args[0]), bitstream.BinName(args[0]))
			}
			h, err := bitstream.ConvertFile(args[0], out, bitstream.Options{Force: force})
			if err != nil {
				return err
			}
			log.Info("wrote .bin", "out", out, "bytes", h.PayloadLen, "design", h.DesignName, "part", h.Part)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "output .bin (default: FILE with .bin beside it)")
	aliasFlags(cmd, map[string]string{"out": "output"})
	cmd.Flags().BoolVar(&force, "force", false, "convert even if the part is not the PYNQ-Z2's "+bitstream.PartPYNQZ2)
	return cmd
}
