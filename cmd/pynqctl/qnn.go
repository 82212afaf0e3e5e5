package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
)

func init() { rootCommands = append(rootCommands, newQNNCmd) }

func newQNNCmd(log *slog.Logger) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "qnn",
		Short: "QNN-MO W1A3 offload engine: packed inputs, host engine runs, parameter export",
	}
	cmd.AddCommand(newQNNInputCmd(log), newQNNRunCmd(log), newQNNExportCmd(log))
	return cmd
}

func newQNNInputCmd(log *slog.Logger) *cobra.Command {
	var model, output, decoder string
	var compact bool
	var threads int
	cmd := &cobra.Command{
		Use:   "input --model DIR IMAGE -o in.bin",
		Short: "Write the engine's packed input for an image (letterbox, first layer, 3-bit quantize, pack)",
		Long: `Decodes IMAGE, letterboxes it to the network input, runs the float first layer with
its 3-bit quantizer and packs the levels as the engine's DDR input: one 192-byte record
per pixel, channel c at record bits 3c..3c+2, records in the engine's order (the
transposed image: record = x*H + y). --compact writes ceil(3C/8) bytes per pixel
instead, the form QNN-MO's Python code hands its library.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if model == "" || output == "" {
				return errors.New("need --model DIR and -o FILE")
			}
			m, err := qnnmo.LoadDir(model)
			if err != nil {
				return err
			}
			first, err := qnnmo.NewFirstLayer(m, threads)
			if err != nil {
				return fmt.Errorf("%s: %w", model, err)
			}
			dec, err := imageDecoder(decoder, qnnmo.ImageDecoder)
			if err != nil {
				return err
			}
			img, err := imageio.LoadWith(args[0], dec)
			if err != nil {
				return err
			}
			if img.C != m.Input.C {
				return fmt.Errorf("%s has %d channels, the model takes %d", args[0], img.C, m.Input.C)
			}
			l := first.OutLayout()
			if compact {
				l = offload.CompactLayout(l.Channels, l.Dim)
			}
			buf := make([]byte, l.Size())
			lb := imageio.Letterbox(img, m.Input.W, m.Input.H)
			if err := first.Run(buf, l, lb.Data); err != nil {
				return err
			}
			if err := os.WriteFile(output, buf, 0o644); err != nil {
				return err
			}
			log.Info("wrote engine input", "file", output, "channels", l.Channels, "dim", l.Dim, "record_bytes", l.RecordBytes, "bytes", len(buf))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&model, "model", "", "QNN-MO parameter directory")
	fl.StringVarP(&output, "output", "o", "", "output file")
	fl.BoolVar(&compact, "compact", false, "ceil(3C/8) bytes per pixel instead of the engine's 192-byte records")
	fl.IntVar(&threads, "threads", 0, "worker goroutines (default: all cores)")
	fl.StringVar(&decoder, "decoder", "", decoderHelp)
	return cmd
}

func newQNNRunCmd(log *slog.Logger) *cobra.Command {
	var model, input, output, backend string
	var threads int
	var simFlags qnnSimFlags
	cmd := &cobra.Command{
		Use:   "run --model DIR --input in.bin -o out.bin [--backend host|sim]",
		Short: "Run the engine layers on a packed input and write the packed output",
		Long: `Runs the model's engine layers (binary convolutions, thresholds, max pools) on a
packed input and writes the packed output in the engine's DDR layout (192-byte records,
channel c at bits 3c..3c+2, the engine's pixel order). The input may have any record
size that divides the file evenly over the first engine layer's pixels (192 bytes as in
DDR, or the compact ceil(3C/8)); short records read as zero past their end.
Backends: host (the bit-exact host reference engine); sim (the board driver on the FPGA
simulation: --bitstream programs a simulated board from the .bit and its .hwh).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if model == "" || input == "" || output == "" {
				return errors.New("need --model DIR, --input FILE and -o FILE")
			}
			if backend == "sim" {
				return runQNNSim(cmd.Context(), log, model, input, output, threads, simFlags)
			}
			if backend != "host" {
				return fmt.Errorf("backend %q is not available (host, sim)", backend)
			}
			m, err := qnnmo.LoadDir(model)
			if err != nil {
				return err
			}
			e, err := qnnmo.NewEngine(m, offload.W1A3, threads)
			if err != nil {
				return fmt.Errorf("%s: %w", model, err)
			}
			in, err := os.ReadFile(input)
			if err != nil {
				return err
			}
			il := e.InLayout()
			if _, err := offload.LayoutForSize(il.Channels, il.Dim, len(in)); err != nil {
				return fmt.Errorf("%s: %w (the engine input is %dx%d pixels)", input, err, il.Dim, il.Dim)
			}
			out, err := e.Run(in)
			if err != nil {
				return fmt.Errorf("%s: %w", input, err)
			}
			if err := os.WriteFile(output, out, 0o644); err != nil {
				return err
			}
			ol := e.OutLayout()
			log.Info("wrote engine output", "file", output, "channels", ol.Channels, "dim", ol.Dim, "record_bytes", ol.RecordBytes, "bytes", len(out))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&model, "model", "", "QNN-MO parameter directory")
	fl.StringVar(&input, "input", "", "packed engine input")
	fl.StringVarP(&output, "output", "o", "", "output file")
	fl.StringVar(&backend, "backend", "host", "engine backend: host or sim")
	fl.IntVar(&threads, "threads", 0, "worker goroutines (default: all cores)")
	simFlags.register(fl)
	return cmd
}

func newQNNExportCmd(log *slog.Logger) *cobra.Command {
	var model, output string
	var buffers bool
	cmd := &cobra.Command{
		Use:   "export --model DIR -o OUTDIR",
		Short: "Write the engine parameter files ({L}-{PE}-weights.bin / -thres.bin) of a model",
		Long: `Writes the hidden layers of a model as QNN-MO binparam files: per weight set L (one
per engine run, numbered from 1) and PE 0..31, little-endian 64-bit weight words and
128-bit threshold entries. With --buffers it also writes the two DDR weight buffers of
each run ({L}-in1.bin, {L}-in2.bin) that the driver hands the engine for a weight load.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if model == "" || output == "" {
				return errors.New("need --model DIR and -o OUTDIR")
			}
			m, err := qnnmo.LoadDir(model)
			if err != nil {
				return err
			}
			if err := qnnmo.WriteBinparams(m, output, offload.W1A3); err != nil {
				return err
			}
			runs, err := offload.Plan(m, offload.W1A3)
			if err != nil {
				return err
			}
			if buffers {
				for _, r := range runs {
					w1, w2, err := offload.LayerBuffers(m, r, offload.W1A3)
					if err != nil {
						return err
					}
					for i, b := range [][]byte{w1, w2} {
						name := filepath.Join(output, fmt.Sprintf("%d-in%d.bin", r.WeightIndex+qnnmo.BinparamSkip, i+1))
						if err := os.WriteFile(name, b, 0o644); err != nil {
							return err
						}
					}
				}
			}
			log.Info("wrote engine parameters", "dir", output, "weight_sets", len(runs), "buffers", buffers)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&model, "model", "", "QNN-MO parameter directory")
	fl.StringVarP(&output, "output", "o", "", "output directory")
	fl.BoolVar(&buffers, "buffers", false, "also write each run's DDR weight buffers")
	return cmd
}
