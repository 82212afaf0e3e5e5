package main

import (
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/internal/humanize"
	"github.com/fpgadetector/pynq-agent/quant/synth"
)

func init() { rootCommands = append(rootCommands, newDatasetCmd) }

func newDatasetCmd(log *slog.Logger) *cobra.Command {
	cmd := &cobra.Command{Use: "dataset", Short: "Make datasets (synthetic chair scenes, pseudo-labels for photos)"}
	cmd.AddCommand(newDatasetSynthCmd(log))
	cmd.AddCommand(newDatasetLabelCmd(log))
	return cmd
}

func newDatasetSynthCmd(log *slog.Logger) *cobra.Command {
	var (
		opt  synth.DatasetOptions
		size string
	)
	cmd := &cobra.Command{
		Use:   "synth --output DIR --count N",
		Short: "Render synthetic rooms with chairs as a darknet dataset with exact boxes",
		Long: `Render synthetic indoor scenes (rooms with chairs of several types, poses, sizes and
occlusions, plus tables, stools, sofas, shelves, cabinets, plants and lamps that are
not chairs) and write them as a darknet dataset:

  DIR/train/synth_NNNNNN.jpg + .txt   labels "class cx cy w h" (normalized)
  DIR/val/...                         the --val-fraction share of the images
  DIR/train.txt, DIR/val.txt          list files (paths relative to DIR unless --abs-paths)
  DIR/classes.names                   chair (plus the distractors with --all-classes)
  DIR/synth.data                      darknet data file

Boxes are the tight rectangles of each object's visible pixels; objects less than a
quarter visible get no box. The same --seed and --size give byte-identical files
whatever --workers is.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if opt.Width, opt.Height, err = parseSynthSize(size); err != nil {
				return err
			}
			bar := imageBar("render")
			opt.Progress = func(done int) { bar.images(done, opt.Count) }
			start := time.Now()
			res, err := synth.WriteDataset(cmd.Context(), opt)
			bar.finish()
			if err != nil {
				return err
			}
			el := time.Since(start)
			n := res.Train + res.Val
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d images %dx%d to %s (train %d, val %d) in %s: %.1f images/s on %d workers\n",
				n, opt.Width, opt.Height, opt.Out, res.Train, res.Val, el.Round(time.Millisecond), float64(n)/el.Seconds(), opt.Workers)
			for c, k := range res.PerClass {
				fmt.Fprintf(cmd.OutOrStdout(), "  %-8s %d boxes\n", res.Names[c], k)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "  %d images without a box; %s; data file %s\n", res.Empty, humanize.Bytes(res.BytesWritten), res.DataFile)
			log.Debug("dataset written", "dir", opt.Out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opt.Out, "output", "", "output directory (new or empty; see --force)")
	aliasFlags(cmd, map[string]string{"out": "output"})
	f.IntVar(&opt.Count, "count", 0, "number of images")
	f.Int64Var(&opt.Seed, "seed", 1, "seed naming the dataset")
	f.StringVar(&size, "size", "416x416", "image size WxH (or N for NxN)")
	f.Float64Var(&opt.ValFraction, "val-fraction", 0.1, "share of images in the val set (0 for none)")
	f.IntVar(&opt.Workers, "workers", runtime.NumCPU(), "parallel renderers")
	f.BoolVar(&opt.AllClasses, "all-classes", false, "label the distractor furniture too (8 classes; chair stays class 0)")
	f.BoolVar(&opt.AbsPaths, "abs-paths", false, "write absolute image paths in train.txt/val.txt and synth.data (darknet resolves relative paths from its working directory)")
	f.BoolVar(&opt.Force, "force", false, "replace a dataset already in --output")
	f.Float64Var(&opt.MinVisible, "min-visible", 0.25, "smallest visible fraction of an object that gets a box")
	f.IntVar(&opt.MinSide, "min-side", 4, "smallest box side in pixels")
	_ = cmd.MarkFlagRequired("output")
	_ = cmd.MarkFlagRequired("count")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if opt.ValFraction == 0 {
			opt.ValFraction = -1 // the API's zero value means the default; 0 on the command line means none
		}
		return nil
	}
	return cmd
}

// parseSynthSize reads "WxH" or "N".
func parseSynthSize(s string) (int, int, error) {
	ws, hs, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
	if !ok {
		hs = ws
	}
	w, err1 := strconv.Atoi(ws)
	h, err2 := strconv.Atoi(hs)
	if err1 != nil || err2 != nil || w <= 0 || h <= 0 {
		return 0, 0, fmt.Errorf("size %q: want WxH such as 416x416, or N", s)
	}
	return w, h, nil
}
