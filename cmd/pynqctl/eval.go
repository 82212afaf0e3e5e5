package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant/dataset"
	"github.com/fpgadetector/pynq-agent/quant/mapeval"
)

func init() { rootCommands = append(rootCommands, newEvalCmd) }

type evalFlags struct {
	gt, gtNames, detections, names, metric string
	imageSet                               string
	iou                                    float64
	json, allClasses                       bool
}

func newEvalCmd(log *slog.Logger) *cobra.Command {
	var f evalFlags
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
			return runEval(cmd.OutOrStdout(), log, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.gt, "dataset", "", "ground truth: darknet-form directory, list file or VOC tree (required)")
	aliasFlags(cmd, map[string]string{"gt": "dataset"})
	fl.StringVar(&f.gtNames, "gt-names", "", "names file of darknet-form ground truth (default: classes.names / *.names beside it, else --names)")
	fl.StringVar(&f.imageSet, "imageset", "", "VOC ground truth: evaluate only this image set (a name like val for ImageSets/Main/val.txt, or a file)")
	fl.StringVar(&f.detections, "detections", "", "detections: comp4 directory/file or detect --json lines (required)")
	fl.StringVar(&f.names, "names", "", "the detector's class names (maps class ids and comp4 file names; restricts the evaluated classes)")
	fl.StringVar(&f.metric, "metric", "voc2012", "voc2012 (all-point) or voc2007 (11-point)")
	fl.Float64Var(&f.iou, "iou", 0.5, "minimum overlap for a true positive")
	fl.BoolVar(&f.json, "json", false, "print the result as JSON")
	fl.BoolVar(&f.allClasses, "all-classes", false, "average over every ground-truth class, also those --names lacks (their AP is 0)")
	_ = cmd.MarkFlagRequired("dataset")
	_ = cmd.MarkFlagRequired("detections")
	return cmd
}

// evalOutput is `pynqctl eval --json`.
type evalOutput struct {
	GroundTruth string `json:"ground_truth"`
	Detections  string `json:"detections"`
	*mapeval.Result
	// NotInModel are ground-truth classes the detector's names lack (not evaluated).
	NotInModel []string `json:"not_in_model,omitempty"`
}

func runEval(out io.Writer, log *slog.Logger, f evalFlags) error {
	metric, err := mapeval.ParseMetric(f.metric)
	if err != nil {
		return err
	}
	var names []string
	if f.names != "" {
		if names, err = dataset.ReadNames(f.names); err != nil {
			return err
		}
	}
	dets, err := mapeval.LoadDetections(f.detections, names)
	if err != nil {
		return err
	}
	ds, err := openGroundTruth(f, names, dets)
	if err != nil {
		return err
	}
	for _, w := range ds.Warnings {
		log.Debug(w)
	}
	restrict := names
	if f.allClasses {
		restrict = nil
	}
	classes, notInModel := mapeval.Classes(ds, restrict)
	if len(classes) == 0 {
		return fmt.Errorf("eval: no class is both in the ground truth (%d classes) and the detector's names", len(ds.ObjectCount()))
	}
	res, err := mapeval.Evaluate(mapeval.GroundTruth(ds), dets.Dets, mapeval.Options{Metric: metric, MinOverlap: f.iou, Classes: classes})
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if f.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(evalOutput{GroundTruth: f.gt, Detections: f.detections, Result: res, NotInModel: notInModel})
	}
	printAPTable(out, res)
	if len(notInModel) > 0 {
		fmt.Fprintf(out, "not evaluated (not in --names): %v\n", notInModel)
	}
	return nil
}

// openGroundTruth loads --dataset; darknet labels without images take the sizes from
// detect JSON output.
func openGroundTruth(f evalFlags, names []string, dets *mapeval.Detections) (*dataset.Dataset, error) {
	opt := dataset.Options{NamesFile: f.gtNames, ImageSet: f.imageSet}
	if len(dets.Sizes) > 0 {
		opt.Size = func(id string) (int, int, bool) {
			s, ok := dets.Sizes[id]
			return s[0], s[1], ok && s[0] > 0 && s[1] > 0
		}
	}
	ds, err := dataset.Open(f.gt, opt)
	if err != nil && f.gtNames == "" && names != nil && errorsIsNoNames(err) {
		opt.Names = names
		ds, err = dataset.Open(f.gt, opt)
	}
	return ds, err
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

func errorsIsNoNames(err error) bool { return errors.Is(err, dataset.ErrNoNames) }
