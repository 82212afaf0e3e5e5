package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
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

// bitInfo is what `pynqctl bit info` reports (also its --json schema).
type bitInfo struct {
	File          string `json:"file"`
	Design        string `json:"design"`
	DesignField   string `json:"design_field"`
	UserID        string `json:"user_id"`
	Version       string `json:"version"`
	Part          string `json:"part"`
	PartIsPYNQZ2  bool   `json:"part_is_pynq_z2"`
	Date          string `json:"date"`
	Time          string `json:"time"`
	PayloadOffset int64  `json:"payload_offset"`
	PayloadBytes  int64  `json:"payload_bytes"`
	FileSHA256    string `json:"file_sha256"`
	PayloadSHA256 string `json:"payload_sha256"`
}

func newBitInfoCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info FILE",
		Short: "Print a .bit file's header, payload size and checksums",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := readBitInfo(args[0])
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

// readBitInfo parses the file in one pass, hashing the whole file and the payload.
func readBitInfo(path string) (*bitInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	fileHash, payloadHash := sha256.New(), sha256.New()
	r := io.TeeReader(bufio.NewReaderSize(f, 64<<10), fileHash)
	h, err := bitstream.Decode(r, fi.Size(), payloadHash)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &bitInfo{
		File:          path,
		Design:        h.DesignName,
		DesignField:   h.Design,
		UserID:        h.UserID,
		Version:       h.Version,
		Part:          h.Part,
		PartIsPYNQZ2:  h.Part == bitstream.PartPYNQZ2,
		Date:          h.Date,
		Time:          h.Time,
		PayloadOffset: h.PayloadOffset,
		PayloadBytes:  h.PayloadLen,
		FileSHA256:    hex.EncodeToString(fileHash.Sum(nil)),
		PayloadSHA256: hex.EncodeToString(payloadHash.Sum(nil)),
	}, nil
}

func printBitInfo(w io.Writer, i *bitInfo) error {
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
