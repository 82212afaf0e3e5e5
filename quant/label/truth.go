package label

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/dataset"
)

// MatchIoU is the overlap a produced box needs with a truth box of its class to count as
// a true positive (VOC's criterion).
const MatchIoU = 0.5

// Counts are the matches of one class.
type Counts struct{ TP, FP, FN int }

// Precision is TP/(TP+FP), 0 when nothing was produced.
func (c Counts) Precision() float64 { return ratio(c.TP, c.TP+c.FP) }

// Recall is TP/(TP+FN), 0 when there is nothing to find.
func (c Counts) Recall() float64 { return ratio(c.TP, c.TP+c.FN) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func (c *Counts) add(o Counts) { c.TP += o.TP; c.FP += o.FP; c.FN += o.FN }

// Eval compares the produced target-class boxes (the accepted ones, after rejected
// boxes are dropped) with existing labels, per target class.
type Eval struct {
	Classes    []string
	All        []Counts // over every processed image, whatever its status
	Kept       []Counts // over the images written out only
	Images     int      // images compared
	KeptImages int
	NoTruth    int // images without a truth label file, counted as having no objects
}

// match matches boxes of one class, given by descending score, to truth boxes: each
// box takes the unmatched truth box it overlaps most if that IoU is at least MatchIoU
// (a true positive), else it is a false positive; truth boxes left are false negatives.
func match(preds, truth [][4]float32) Counts {
	used := make([]bool, len(truth))
	var c Counts
	for _, p := range preds {
		best, bestIoU := -1, float32(MatchIoU)
		for j, t := range truth {
			if v := boxes.IoU(p, t); !used[j] && v >= bestIoU {
				best, bestIoU = j, v
			}
		}
		if best < 0 {
			c.FP++
			continue
		}
		used[best] = true
		c.TP++
	}
	c.FN = len(truth) - c.TP
	return c
}

// add counts one image: preds and truth hold normalized corner boxes per target class
// (preds by descending score).
func (e *Eval) add(preds, truth [][][4]float32, kept bool) {
	e.Images++
	if kept {
		e.KeptImages++
	}
	for c := range e.Classes {
		m := match(preds[c], truth[c])
		e.All[c].add(m)
		if kept {
			e.Kept[c].add(m)
		}
	}
}

// truthSet reads darknet labels of the processed images from another directory, in
// another class list, keeping the target classes (matched by name).
type truthSet struct {
	dir      string
	names    []string
	toTarget []int
}

func newTruthSet(dir, namesFile string, target []string) (*truthSet, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("truth directory %s: not a readable directory", dir)
	}
	if namesFile == "" {
		var err error
		if namesFile, err = dataset.FindNames(dir); err != nil {
			return nil, fmt.Errorf("truth: %w", err)
		}
	}
	names, err := dataset.ReadNames(namesFile)
	if err != nil {
		return nil, fmt.Errorf("truth: %w", err)
	}
	ts := &truthSet{dir: dir, names: names, toTarget: make([]int, len(names))}
	found := false
	for i, n := range names {
		ts.toTarget[i] = slices.Index(target, n)
		found = found || ts.toTarget[i] >= 0
	}
	if !found {
		return nil, fmt.Errorf("truth names %s have none of the target classes (%s)", namesFile, strings.Join(target, ", "))
	}
	return ts, nil
}

// boxes returns the truth boxes of image id (the source's base name) per target class
// as normalized corners, and whether a label file exists.
func (ts *truthSet) boxes(id string, classes int) ([][][4]float32, bool, error) {
	out := make([][][4]float32, classes)
	path := filepath.Join(ts.dir, id+".txt")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("truth: %w", err)
	}
	defer f.Close()
	labels, err := dataset.ParseLabels(f, path, len(ts.names))
	if err != nil {
		return nil, false, fmt.Errorf("truth: %w", err)
	}
	for _, l := range labels {
		if c := ts.toTarget[l.Class]; c >= 0 {
			out[c] = append(out[c], clip01([4]float32{
				float32(l.CX - l.W/2), float32(l.CY - l.H/2), float32(l.CX + l.W/2), float32(l.CY + l.H/2)}))
		}
	}
	return out, true, nil
}

func clip01(b [4]float32) [4]float32 {
	for i := range b {
		b[i] = max(0, min(b[i], 1))
	}
	return b
}
