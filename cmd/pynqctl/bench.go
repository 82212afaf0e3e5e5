package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/agent"
	"github.com/fpgadetector/pynq-agent/agent/demomodel"
)

func init() { rootCommands = append(rootCommands, newBenchCmd) }

func newBenchCmd(log *slog.Logger) *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure the board's per-frame work"}
	cmd.AddCommand(newBenchBoardCmd(log))
	return cmd
}

func newBenchBoardCmd(log *slog.Logger) *cobra.Command {
	var (
		o          agent.BenchOptions
		size, yuyv string
	)
	cmd := &cobra.Command{
		Use:   "board --model DIR [--frames N] [--size WxH | --yuyv WxH] IMAGE",
		Short: "Run the agent's per-frame work on the board N times and print per-stage times",
		Long: `Runs, frame after frame, exactly what pynq-agent does for each frame on the board:
decode the camera's frame (a JPEG as MJPEG delivers it, or with --yuyv a raw YUYV frame),
letterbox, first layer, the driver's work around the engine (buffer syncs, register
writes; the simulated engine stands in for the FPGA), last layer, region decode and NMS,
and the feed's JPEG encode for a viewer. It prints host milliseconds per stage and frame
and the real engine's time from its cycle model.

Built for the board (GOARCH=arm) and run under scripts/board-cost.sh's instruction
counter, it gives the board's CPU cost: --only STAGE repeats one stage on the first
frame's data, so a 1-frame run subtracted from an N-frame run isolates it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if o.Image, err = os.ReadFile(args[0]); err != nil {
				return err
			}
			switch {
			case size != "" && yuyv != "":
				return fmt.Errorf("--size and --yuyv both give the frame size: pass one")
			case yuyv != "":
				o.YUYV = true
				o.Width, o.Height, err = parseWxH("--yuyv", yuyv)
			case size != "":
				o.Width, o.Height, err = parseWxH("--size", size)
			}
			if err != nil {
				return err
			}
			if o.Bitstream == "" {
				dir, err := os.MkdirTemp("", "pynqctl-bench")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				p, err := demomodel.Extract(dir)
				if err != nil {
					return err
				}
				o.Bitstream = p.Bitstream
			}
			res, err := agent.BenchBoard(cmd.Context(), o, agentLog(log))
			if err != nil {
				return err
			}
			printBench(cmd.OutOrStdout(), res)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.ModelDir, "model", "", "QNN-MO parameter directory (required)")
	fl.StringVar(&o.Names, "names", "", "class names file (default: class numbers)")
	fl.StringVar(&o.Bitstream, "bitstream", "", "simulation design .bit, its .hwh beside it (default: the built-in one)")
	fl.IntVar(&o.Frames, "frames", 10, "frames to run")
	fl.StringVar(&size, "size", "", "scale the image to this camera frame size first, WxH (sent as a JPEG)")
	fl.StringVar(&yuyv, "yuyv", "", "send the frame as raw YUYV 4:2:2 of this size, WxH")
	fl.StringVar(&o.Only, "only", "", "repeat only this stage: decode, letterbox, first, engine, last, nms or encode")
	_ = cmd.MarkFlagRequired("model")
	return cmd
}

func parseWxH(flag, s string) (int, int, error) {
	ws, hs, ok := strings.Cut(s, "x")
	w, err1 := strconv.Atoi(ws)
	h, err2 := strconv.Atoi(hs)
	if !ok || err1 != nil || err2 != nil || w < 2 || h < 2 || w > 8192 || h > 8192 {
		return 0, 0, fmt.Errorf("%s %q: want WxH, for example 640x480", flag, s)
	}
	return w, h, nil
}

func printBench(w interface{ Write([]byte) (int, error) }, r *agent.BenchResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "source\t%s, %d frame(s)\n", r.Source, r.Frames)
	var cpu time.Duration
	for _, s := range agent.BenchStages {
		d, ok := r.PerFrame[s.Name]
		if !ok {
			continue
		}
		note := ""
		if s.Name == agent.StageEngine {
			note = "  (driver + simulated engine on this machine)"
		} else {
			cpu += d
		}
		fmt.Fprintf(tw, "%s\t%.2f ms/frame\t%s%s\n", s.Name, ms(d), s.Thread, note)
	}
	fmt.Fprintf(tw, "CPU stages\t%.2f ms/frame\n", ms(cpu))
	fmt.Fprintf(tw, "engine on the board\t%.2f ms/frame\t(cycle model at FCLK0)\n", ms(r.EngineModel))
	fmt.Fprintf(tw, "detections\t%d\n", len(r.Detections))
	tw.Flush()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
