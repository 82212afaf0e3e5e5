package mapeval

import (
	"slices"

	"github.com/fpgadetector/pynq-agent/quant/dataset"
)

// GroundTruth converts a dataset's labels for Evaluate.
func GroundTruth(ds *dataset.Dataset) []ImageGT {
	gt := make([]ImageGT, len(ds.Images))
	for i, im := range ds.Images {
		gt[i].ID = im.ID
		for _, o := range im.Objects {
			gt[i].Objects = append(gt[i].Objects, Object{Class: o.Class, Box: o.Box, Difficult: o.Difficult})
		}
	}
	return gt
}

// Classes returns the classes to evaluate: present in the ground truth (a
// non-difficult object) and, when the model's names are known, in them; chair first,
// then the dataset's order. notInModel lists present classes the model lacks.
func Classes(ds *dataset.Dataset, modelNames []string) (classes, notInModel []string) {
	count := ds.ObjectCount()
	order := slices.Clone(ds.Names)
	for _, im := range ds.Images { // classes a names file does not list (VOC: all)
		for _, o := range im.Objects {
			if !slices.Contains(order, o.Class) {
				order = append(order, o.Class)
			}
		}
	}
	for _, c := range ChairFirst(order) {
		switch {
		case count[c] == 0:
		case modelNames != nil && !slices.Contains(modelNames, c):
			notInModel = append(notInModel, c)
		default:
			classes = append(classes, c)
		}
	}
	return classes, notInModel
}

// ChairFirst moves "chair" (the product's class) to the front.
func ChairFirst(names []string) []string {
	out := make([]string, 0, len(names))
	if slices.Contains(names, "chair") {
		out = append(out, "chair")
	}
	for _, n := range names {
		if n != "chair" {
			out = append(out, n)
		}
	}
	return out
}
