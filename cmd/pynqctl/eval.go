package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant/mapeval"
)

func init() { rootCommands = append(rootCommands, newEvalCmd) }

func newEvalCmd(log *slog.Logger) *cobra.Command {
	var (
		o      mapeval.FilesOptions
		metric string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "eval --dataset DIR --detections PATH [--names F] [--metric voc2012|voc2007] [--json]",
		Short: "VOC average precision per class and mAP of detections against ground truth",
		Long: `Computes PASCAL VOC AP per class and their mean exactly as the VOC devkit does
(pixel boxes with +1 in widths and heights, IoU >= 0.5, greedy by confidence, each object
matched once, difficult objects ignored; all-point AP by default, 11-point with
--metric voc2007), over the classes present in the ground truth (and, with --names,
known to the detector, unless --all-classes; classes are matched by name).

Ground truth (--dataset, formerly --gt): a darknet-form directory (images + same-name .txt labels, names
file classes.names or *.names in it or its parent, or --gt-names), a darknet list file,
or a VOC tree (Annotations/*.xml + JPEGImages/).

Detections (--detections): darknet's ` + "`detector valid`" + ` output (a directory or files
comp4_det_test_<class>.txt: "image_id score x1 y1 x2 y2", image_id = file name without
extension) or ` + "`pynqctl detect --json`" + ` output (JSON lines; boxes move by +1 into the
devkit's 1-based pixels as darknet's valid output does).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEval(cmd.OutOrStdout(), log, o, metric, asJSON)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Dataset, "dataset", "", "ground truth: darknet-form directory, list file or VOC tree (required)")
	aliasFlags(cmd, map[string]string{"gt": "dataset"})
	fl.StringVar(&o.DatasetNames, "gt-names", "", "names file of darknet-form ground truth (default: classes.names / *.names beside it, else --names)")
	fl.StringVar(&o.ImageSet, "imageset", "", "VOC ground truth: evaluate only this image set (a name like val for ImageSets/Main/val.txt, or a file)")
	fl.StringVar(&o.Detections, "detections", "", "detections: comp4 directory/file or detect --json lines (required)")
	fl.StringVar(&o.Names, "names", "", "the detector's class names (maps class ids and comp4 file names; restricts the evaluated classes)")
	fl.StringVar(&metric, "metric", "voc2012", "voc2012 (all-point) or voc2007 (11-point)")
	fl.Float64Var(&o.MinOverlap, "iou", 0.5, "minimum overlap for a true positive")
	fl.BoolVar(&asJSON, "json", false, "print the result as JSON")
	fl.BoolVar(&o.AllClasses, "all-classes", false, "average over every ground-truth class, also those --names lacks (their AP is 0)")
	_ = cmd.MarkFlagRequired("dataset")
	_ = cmd.MarkFlagRequired("detections")
	return cmd
}

func runEval(out io.Writer, log *slog.Logger, o mapeval.FilesOptions, metric string, asJSON bool) error {
	var err error
	if o.Metric, err = mapeval.ParseMetric(metric); err != nil {
		return err
	}
	res, err := mapeval.EvaluateFiles(o)
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		log.Debug(w)
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printAPTable(out, res.Result)
	if len(res.NotInModel) > 0 {
		fmt.Fprintf(out, "not evaluated (not in --names): %v\n", res.NotInModel)
	}
	return nil
}

func printAPTable(out io.Writer, res *mapeval.Result) {
	w := len("class")
	for _, c := range res.Classes {
		w = max(w, len(c.Class))
	}
	fmt.Fprintf(out, "%-*s %8s %10s %6s %6s %7s\n", w, "class", "objects", "detections", "TP", "FP", "AP (%)")
	for _, c := range res.Classes {
		fmt.Fprintf(out, "%-*s %8d %10d %6d %6d %7.2f\n", w, c.Class, c.Positives, c.Detections, c.TP, c.FP, 100*c.AP)
	}
	fmt.Fprintf(out, "mAP %.2f %% (%s, IoU >= %g, %d classes, %d images)\n", 100*res.MAP, res.Metric, res.MinOverlap, len(res.Classes), res.Images)
}
