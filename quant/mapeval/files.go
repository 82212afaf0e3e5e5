package mapeval

import (
	"errors"
	"fmt"

	"github.com/fpgadetector/pynq-agent/quant/dataset"
)

// FilesOptions are EvaluateFiles' (pynqctl eval).
type FilesOptions struct {
	Dataset      string // ground truth: a darknet-form directory, a list file or a VOC tree
	DatasetNames string // names file of darknet-form ground truth; default: beside it, else Names
	ImageSet     string // VOC: evaluate only this image set
	Detections   string // comp4 directory or file, or detect --json lines
	Names        string // the detector's names: map class ids, restrict the classes
	AllClasses   bool   // average over every ground-truth class, also those Names lacks
	Metric       Metric
	MinOverlap   float64
}

// FilesResult is an evaluation of files (pynqctl eval --json).
type FilesResult struct {
	GroundTruth string `json:"ground_truth"`
	Detections  string `json:"detections"`
	*Result
	// NotInModel are ground-truth classes the detector's names lack (not evaluated).
	NotInModel []string `json:"not_in_model,omitempty"`
	// Warnings are the ground truth reader's.
	Warnings []string `json:"-"`
}

// EvaluateFiles reads detections and ground truth and evaluates them over the classes
// both know (all ground-truth classes with AllClasses).
func EvaluateFiles(o FilesOptions) (*FilesResult, error) {
	var names []string
	var err error
	if o.Names != "" {
		if names, err = dataset.ReadNames(o.Names); err != nil {
			return nil, err
		}
	}
	dets, err := LoadDetections(o.Detections, names)
	if err != nil {
		return nil, err
	}
	ds, err := openGroundTruth(o, names, dets)
	if err != nil {
		return nil, err
	}
	restrict := names
	if o.AllClasses {
		restrict = nil
	}
	classes, notInModel := Classes(ds, restrict)
	if len(classes) == 0 {
		return nil, fmt.Errorf("eval: no class is both in the ground truth (%d classes) and the detector's names", len(ds.ObjectCount()))
	}
	res, err := Evaluate(GroundTruth(ds), dets.Dets, Options{Metric: o.Metric, MinOverlap: o.MinOverlap, Classes: classes})
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	return &FilesResult{GroundTruth: o.Dataset, Detections: o.Detections, Result: res, NotInModel: notInModel, Warnings: ds.Warnings}, nil
}

// openGroundTruth opens the dataset; darknet labels without images take the sizes
// from detect JSON output, and the detector's names when the dataset has none.
func openGroundTruth(o FilesOptions, names []string, dets *Detections) (*dataset.Dataset, error) {
	opt := dataset.Options{NamesFile: o.DatasetNames, ImageSet: o.ImageSet}
	if len(dets.Sizes) > 0 {
		opt.Size = func(id string) (int, int, bool) {
			s, ok := dets.Sizes[id]
			return s[0], s[1], ok && s[0] > 0 && s[1] > 0
		}
	}
	ds, err := dataset.Open(o.Dataset, opt)
	if err != nil && o.DatasetNames == "" && names != nil && errors.Is(err, dataset.ErrNoNames) {
		opt.Names = names
		ds, err = dataset.Open(o.Dataset, opt)
	}
	return ds, err
}
