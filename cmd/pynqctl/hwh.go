package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/overlay"
)

func init() { rootCommands = append(rootCommands, newHWHCmd) }

func newHWHCmd(*slog.Logger) *cobra.Command {
	cmd := &cobra.Command{Use: "hwh", Short: "Inspect Vivado hardware handoff (.hwh) files"}
	cmd.AddCommand(newHWHInfoCmd())
	return cmd
}

func newHWHInfoCmd() *cobra.Command {
	var asJSON, registers bool
	cmd := &cobra.Command{
		Use:   "info FILE",
		Short: "Print a .hwh file's modules, address map, PL clocks and interrupts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := overlay.LoadHWH(args[0])
			if err != nil {
				return err
			}
			info := d.Summary(args[0], registers)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			return printHWHInfo(cmd.OutOrStdout(), info)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&registers, "registers", false, "also list the registers of every module the CPU can reach")
	return cmd
}

func printHWHInfo(w io.Writer, i *overlay.Summary) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "file:\t%s\n", i.File)
	fmt.Fprintf(tw, "device:\t%s%s%s (Vivado %s)\n", i.Device, i.Package, i.SpeedGrade, orNone(i.Vivado))

	fmt.Fprintf(tw, "\nmodules (%d):\n", len(i.Modules))
	fmt.Fprintln(tw, "  INSTANCE\tTYPE\tVLNV")
	for _, m := range i.Modules {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", m.Instance, m.Type, m.VLNV)
	}

	fmt.Fprintln(tw, "\naddress map (what the CPU reaches):")
	if len(i.AddressMap) == 0 {
		fmt.Fprintln(tw, "  (none: no processing-system memory map)")
	} else {
		fmt.Fprintln(tw, "  BASE\tHIGH\tSIZE\tTYPE\tINSTANCE\tINTERFACE")
		for _, r := range i.AddressMap {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", r.Base, r.High, humanSize(r.Size), r.Type, r.Instance, r.SlaveBus)
		}
	}

	fmt.Fprintln(tw, "\nPL clocks:")
	if len(i.Clocks) == 0 {
		fmt.Fprintln(tw, "  (none: no Zynq-7000 PS)")
	}
	for _, c := range i.Clocks {
		state := "enabled"
		if !c.Enabled {
			state = "disabled"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s / %d / %d\t= %.3f MHz\t(requested %g)\n",
			c.Name, state, c.Source, c.Divisor0, c.Divisor1, c.MHz, c.RequestedMHz)
	}

	fmt.Fprintln(tw, "\ninterrupts:")
	if len(i.Interrupts) == 0 {
		fmt.Fprintln(tw, "  (none wired to the PS IRQ_F2P input)")
	}
	for _, in := range i.Interrupts {
		via := ""
		if in.Controller != "" {
			via = fmt.Sprintf("via %s input %d", in.Controller, in.ControllerIndex)
		}
		fmt.Fprintf(tw, "  %s.%s\tIRQ_F2P[%d]\tGIC %d\t%s\n", in.Instance, in.Port, in.IRQF2P, in.GIC, via)
	}

	if len(i.Registers) > 0 {
		fmt.Fprintln(tw, "\nregisters:")
		fmt.Fprintln(tw, "  INSTANCE\tOFFSET\tNAME\tBITS\tACCESS")
		for _, r := range i.Registers {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\n", r.Instance, r.Offset, r.Name, r.Bits, r.Access)
		}
	}
	return tw.Flush()
}

// humanSize prints a power-of-two size the way address editors do (64K, 512M).
func humanSize(n uint64) string {
	for _, u := range []struct {
		shift uint
		unit  string
	}{{30, "G"}, {20, "M"}, {10, "K"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.unit)
		}
	}
	return strconv.FormatUint(n, 10)
}
