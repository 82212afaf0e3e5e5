package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/label"
)

type datasetLabelFlags struct {
	names, out, reject, truth, truthNames string
	teachers                              []string
	fuseIoU, thresh, uncertain            float32
	keepUncertain, objectCentred          bool
	threads                               int
}

func newDatasetLabelCmd(log *slog.Logger) *cobra.Command {
	var f datasetLabelFlags
	cmd := &cobra.Command{
		Use:   "label --names TARGET.names --teacher SPEC [--teacher SPEC...] --output DIR IMAGE_DIR...",
		Short: "Pseudo-label unlabeled photos with teacher models, with a contact sheet to review",
		Long: `Runs one or more teacher models on the images of each IMAGE_DIR (sorted by path) and
writes a darknet dataset for the target classes of --names into --output:

  DIR/<id>.<ext> + <id>.txt   a link to each kept image (a copy where links fail) and its
                              labels "class cx cy w h" (normalized); no boxes = empty file
  DIR/classes.names           the target names
  DIR/labels.json             every image: source, status (kept/uncertain/rejected), boxes
                              with index, class, score and the teachers that saw them
  DIR/index.html, thumbs/     a contact sheet: tick wrong images, copy or download the
                              rejection list, and pass it back with --reject

A teacher SPEC is comma-separated key=value:
  cfg=F,weights=F   a darknet float model, or
  model=DIR         a QNN-MO parameter directory
  names=F           the teacher's class names (required)
  thresh=T          the teacher's own score threshold (default: --uncertain)
  map=A:B[;C:D]     teacher class A -> target class B (repeatable; several teacher classes
                    may map to one target class). Default: classes of the same name.
  name=N            the teacher's name in labels.json
e.g. cfg=yolo-fastest-1.1.cfg,weights=yolo-fastest-1.1.weights,names=coco.names,map=chair:chair
     model=qnn-mo-pynq/params,names=voc.names,thresh=0.2

Boxes of all teachers are fused per class (weighted boxes fusion: clusters at IoU >=
--fuse-iou, score-weighted mean corners, score = mean over teachers, so a box one of two
teachers sees counts half). Fused boxes scoring >= --thresh become labels. An image with
a fused box between --uncertain and --thresh is uncertain and left out (a missed object
would train as background) unless --keep-uncertain.

--object-centred is for photos that each show one target object (product shots such
as Caltech-101's chairs), which teachers trained on scenes see with low scores: each
image gets its best fused box from --uncertain up, and an image without one is left
out instead of becoming a negative.

A rejection list (--reject) has one image id per line ("ID" drops the image, "ID N" only
its box N, numbered as in labels.json and on the thumbnails; # comments). Re-run with the
same settings so that box numbers stay the same; --output may be the earlier output.

With --truth DIR (darknet labels <image>.txt of the same images, names from --truth-names
or DIR's names file) the labels are compared with the truth: TP, FP, FN, precision and
recall per target class at IoU >= 0.5, over all images and over the written ones.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDatasetLabel(cmd, log, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.names, "names", "", "target class names file (e.g. a file holding just: chair)")
	fl.StringArrayVar(&f.teachers, "teacher", nil, "teacher model SPEC (repeatable; see above)")
	fl.StringVar(&f.out, "output", "", "output directory (new, empty, or an earlier output to replace)")
	aliasFlags(cmd, map[string]string{"out": "output"})
	fl.Float32Var(&f.fuseIoU, "fuse-iou", label.DefaultFuseIoU, "IoU at which boxes of different teachers fuse")
	fl.Float32Var(&f.thresh, "thresh", label.DefaultThresh, "fused score a box needs to become a label")
	fl.Float32Var(&f.uncertain, "uncertain", label.DefaultUncertain, "fused score from which a box below --thresh makes its image uncertain")
	fl.BoolVar(&f.keepUncertain, "keep-uncertain", false, "write uncertain images too (with their accepted boxes)")
	fl.BoolVar(&f.objectCentred, "object-centred", false, "each photo shows one target object: keep its best box from --uncertain up, never write negatives")
	fl.StringVar(&f.reject, "reject", "", "rejection list from reviewing an earlier run")
	fl.StringVar(&f.truth, "truth", "", "directory of darknet labels of the same images, to measure precision and recall")
	fl.StringVar(&f.truthNames, "truth-names", "", "class names of the --truth labels (default: the directory's names file)")
	fl.IntVar(&f.threads, "threads", 0, "goroutines per model (default: all cores)")
	for _, req := range []string{"names", "teacher", "out"} {
		_ = cmd.MarkFlagRequired(req)
	}
	return cmd
}

// labelOptions checks the flags and reads the files they name, before any model loads.
func labelOptions(f datasetLabelFlags, inputs []string) (label.Options, error) {
	opt := label.Options{Inputs: inputs, Out: f.out, FuseIoU: f.fuseIoU, Thresh: f.thresh, Uncertain: f.uncertain,
		KeepUncertain: f.keepUncertain, ObjectCentred: f.objectCentred, TruthDir: f.truth, TruthNames: f.truthNames, Threads: f.threads}
	if f.fuseIoU <= 0 || f.thresh <= 0 || f.uncertain <= 0 {
		return opt, errors.New("--fuse-iou, --thresh and --uncertain must be above 0")
	}
	if f.truthNames != "" && f.truth == "" {
		return opt, errors.New("--truth-names needs --truth")
	}
	var err error
	if opt.Target, err = boxes.LoadNames(f.names); err != nil {
		return opt, fmt.Errorf("--names: %w", err)
	}
	for _, s := range f.teachers {
		t, err := label.ParseTeacherSpec(s)
		if err != nil {
			return opt, err
		}
		opt.Teachers = append(opt.Teachers, t)
	}
	if f.reject != "" {
		if opt.Reject, err = label.LoadRejections(f.reject); err != nil {
			return opt, err
		}
	}
	return opt, nil
}

func runDatasetLabel(cmd *cobra.Command, log *slog.Logger, f datasetLabelFlags, inputs []string) error {
	opt, err := labelOptions(f, inputs)
	if err != nil {
		return err
	}
	bar := imageBar("label")
	opt.Progress = bar.images
	start := time.Now()
	res, err := label.Label(cmd.Context(), opt)
	bar.finish()
	if err != nil {
		return err
	}
	printLabelSummary(cmd.OutOrStdout(), opt, res, time.Since(start))
	log.Debug("pseudo-labels written", "dir", opt.Out)
	return nil
}

func printLabelSummary(w io.Writer, opt label.Options, res *label.Result, el time.Duration) {
	fmt.Fprintf(w, "labelled %d images in %s (%.1f images/s) into %s\n",
		res.Images, el.Round(time.Millisecond), float64(res.Images)/el.Seconds(), opt.Out)
	left := "left out"
	if opt.KeepUncertain {
		left = "written"
	}
	fmt.Fprintf(w, "  kept %d (%d without boxes), uncertain %d (%s), rejected %d\n",
		res.Kept, res.Negatives, res.Uncertain, left, res.Rejected)
	for c, n := range res.Boxes {
		fmt.Fprintf(w, "  %-12s %d boxes\n", opt.Target[c], n)
	}
	if len(res.UnusedRejections) > 0 {
		fmt.Fprintf(w, "  warning: %d rejection-list entries match nothing: %s\n",
			len(res.UnusedRejections), strings.Join(res.UnusedRejections, ", "))
	}
	if e := res.Eval; e != nil {
		fmt.Fprintf(w, "truth %s (IoU >= %.1f; %d images without a label file):\n", opt.TruthDir, label.MatchIoU, e.NoTruth)
		fmt.Fprintf(w, "  %-12s %-14s %6s %6s %6s %9s %7s\n", "class", "images", "TP", "FP", "FN", "precision", "recall")
		for c, name := range e.Classes {
			for _, row := range []struct {
				what string
				n    int
				k    label.Counts
			}{{"all", e.Images, e.All[c]}, {"written", e.KeptImages, e.Kept[c]}} {
				fmt.Fprintf(w, "  %-12s %-14s %6d %6d %6d %9.3f %7.3f\n", name, fmt.Sprintf("%s %d", row.what, row.n),
					row.k.TP, row.k.FP, row.k.FN, row.k.Precision(), row.k.Recall())
			}
		}
	}
}
