package label

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// Defaults of [Options] fields left zero.
const (
	DefaultFuseIoU   = 0.55
	DefaultThresh    = 0.3
	DefaultUncertain = 0.1
)

// Options describe a labelling run.
type Options struct {
	Target   []string      // target class names (written as classes.names)
	Teachers []TeacherSpec // at least one
	Inputs   []string      // image directories (not recursive) or image files
	Out      string        // output directory: new, empty, or a previous run's output

	FuseIoU float32 // IoU at which boxes of different teachers fuse; 0 means 0.55
	Thresh  float32 // fused score a box needs to become a label; 0 means 0.3
	// Uncertain is the fused score from which a box below Thresh makes its image
	// uncertain; 0 means 0.1, and Uncertain == Thresh means no image is uncertain.
	Uncertain float32
	// KeepUncertain writes uncertain images too (with their accepted boxes only);
	// by default they are left out, since their missed objects would train as background.
	KeepUncertain bool
	// ObjectCentred is for photos that each show one target object (product shots,
	// Caltech-101's chairs): each image gets its single best fused box whatever its
	// score (from Uncertain up), and an image without one is left out rather than
	// written as a negative. Teachers find such lone, centred objects with low scores.
	ObjectCentred bool

	Reject *Rejections // a reviewer's rejections from a previous run; optional

	// TruthDir, when set, holds darknet labels (<image base>.txt) of the same images in
	// the class list TruthNames (default: the directory's names file); the produced
	// boxes are compared with them ([Result.Eval]).
	TruthDir, TruthNames string

	Threads  int                   // goroutines per model; <= 0 uses GOMAXPROCS
	Progress func(done, total int) // called after each image; optional
}

// Status is what became of an image or a box.
type Status string

const (
	StatusKept      Status = "kept"      // image written with its labels
	StatusUncertain Status = "uncertain" // image or box between Uncertain and Thresh
	StatusRejected  Status = "rejected"  // named in the rejection list
	StatusAccepted  Status = "accepted"  // box that became a label
)

// Result summarizes a run.
type Result struct {
	Images    int   // images processed
	Kept      int   // images written with status kept (negatives included)
	Negatives int   // kept images without a box
	Uncertain int   // uncertain images (written only with KeepUncertain)
	Rejected  int   // images the rejection list removed
	Boxes     []int // labels written per target class
	// UnusedRejections are ids of the rejection list that matched no image (or box).
	UnusedRejections []string
	Eval             *Eval // with Options.TruthDir
}

// Label runs the teachers on every image of opt.Inputs (sorted by path), fuses their
// boxes and writes the dataset, labels.json and the contact sheet into opt.Out. Every
// input is checked before any image is processed; the output is byte-identical for the
// same inputs. It stops with ctx's error when ctx is cancelled.
func Label(ctx context.Context, opt Options) (*Result, error) {
	r, err := prepare(opt)
	if err != nil {
		return nil, err
	}
	return r.run(ctx)
}

// runner holds a prepared run.
type runner struct {
	opt      Options
	teachers []*teacher
	truth    *truthSet
	inputs   []input
	prev     *labelsFile // the previous run's output, removed before writing
	records  []imageRecord
	res      Result
}

// prepare checks every option and input, then loads the models.
func prepare(opt Options) (*runner, error) {
	if err := opt.defaults(); err != nil {
		return nil, err
	}
	r := &runner{opt: opt}
	for i, spec := range opt.Teachers {
		t, err := newTeacher(spec, opt.Target, opt.Uncertain)
		if err != nil {
			return nil, fmt.Errorf("teacher %d: %w", i+1, err)
		}
		for r.hasTeacher(t.name) {
			t.name += fmt.Sprintf("-%d", i+1)
		}
		r.teachers = append(r.teachers, t)
	}
	var err error
	if opt.TruthDir != "" {
		if r.truth, err = newTruthSet(opt.TruthDir, opt.TruthNames, opt.Target); err != nil {
			return nil, err
		}
	}
	if r.inputs, err = listInputs(opt.Inputs); err != nil {
		return nil, err
	}
	if r.prev, err = checkOut(opt.Out, r.inputs); err != nil {
		return nil, err
	}
	for i, t := range r.teachers {
		if err := t.load(opt.Teachers[i], opt.Threads); err != nil {
			return nil, fmt.Errorf("teacher %s: %w", t.name, err)
		}
	}
	return r, nil
}

func (r *runner) hasTeacher(name string) bool {
	return slices.ContainsFunc(r.teachers, func(t *teacher) bool { return t.name == name })
}

// defaults fills zero fields and checks the rest.
func (o *Options) defaults() error {
	o.FuseIoU = orDefault(o.FuseIoU, DefaultFuseIoU)
	o.Thresh = orDefault(o.Thresh, DefaultThresh)
	o.Uncertain = orDefault(o.Uncertain, DefaultUncertain)
	switch {
	case len(o.Target) == 0:
		return errors.New("no target class names")
	case len(o.Teachers) == 0:
		return errors.New("no teacher (give at least one model)")
	case len(o.Inputs) == 0:
		return errors.New("no image directory")
	case o.Out == "":
		return errors.New("no output directory")
	case !(o.FuseIoU > 0 && o.FuseIoU <= 1):
		return fmt.Errorf("fuse IoU %g: want a number in (0, 1]", o.FuseIoU)
	case !(o.Thresh > 0 && o.Thresh <= 1):
		return fmt.Errorf("threshold %g: want a number in (0, 1]", o.Thresh)
	case !(o.Uncertain > 0 && o.Uncertain <= o.Thresh):
		return fmt.Errorf("uncertain threshold %g: want a number in (0, threshold %g]", o.Uncertain, o.Thresh)
	}
	for i, n := range o.Target {
		if slices.Index(o.Target, n) != i {
			return fmt.Errorf("target class %q listed twice", n)
		}
	}
	return nil
}

func orDefault(v, def float32) float32 {
	if v == 0 {
		return def
	}
	return v
}

// run processes the images in order and writes the output.
func (r *runner) run(ctx context.Context) (*Result, error) {
	if err := r.prev.remove(r.opt.Out); err != nil {
		return nil, err
	}
	if err := mkdirs(r.opt.Out); err != nil {
		return nil, err
	}
	r.res.Boxes = make([]int, len(r.opt.Target))
	if r.truth != nil {
		n := len(r.opt.Target)
		r.res.Eval = &Eval{Classes: r.opt.Target, All: make([]Counts, n), Kept: make([]Counts, n)}
	}
	for i, in := range r.inputs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := r.image(in); err != nil {
			return nil, err
		}
		if r.opt.Progress != nil {
			r.opt.Progress(i+1, len(r.inputs))
		}
	}
	r.res.UnusedRejections = r.unusedRejections()
	if err := r.writeSummaryFiles(); err != nil {
		return nil, err
	}
	return &r.res, nil
}

// image labels one input.
func (r *runner) image(in input) error {
	imgs := map[imageio.Decoder]*imageio.Image{}
	var boxes []Box
	var first *imageio.Image
	for i, t := range r.teachers {
		img := imgs[t.dec]
		if img == nil {
			var err error
			if img, err = imageio.LoadWith(in.path, t.dec); err != nil {
				return fmt.Errorf("%s: %w", in.path, err)
			}
			imgs[t.dec] = img
		}
		if first == nil {
			first = img
		}
		b, err := t.boxes(img, i)
		if err != nil {
			return fmt.Errorf("%s: teacher %s: %w", in.path, t.name, err)
		}
		boxes = append(boxes, b...)
	}
	rec := r.classify(in, first.W, first.H, Fuse(boxes, len(r.teachers), r.opt.FuseIoU))
	if err := r.write(&rec, first); err != nil {
		return err
	}
	r.count(rec)
	if r.truth != nil {
		if err := r.evaluate(in, rec); err != nil {
			return err
		}
	}
	r.records = append(r.records, rec)
	return nil
}

// classify turns fused boxes into the image's record: boxes below Uncertain are
// dropped, the rest numbered (the index rejection lists use) and given a status.
func (r *runner) classify(in input, w, h int, fused []Fused) imageRecord {
	rec := imageRecord{ID: in.id, Source: in.path, Width: w, Height: h, Status: StatusKept, Boxes: []boxRecord{}}
	if r.opt.ObjectCentred {
		return r.classifyCentred(in, rec, fused)
	}
	uncertain := false
	for _, f := range fused {
		if f.Score < r.opt.Uncertain {
			continue
		}
		b := newBoxRecord(len(rec.Boxes), f, r.opt.Target, r.teachers)
		switch {
		case r.opt.Reject.box(in.id, b.Index):
			b.Status = StatusRejected
		case f.Score >= r.opt.Thresh:
			b.Status = StatusAccepted
		default:
			b.Status = StatusUncertain
			uncertain = true
		}
		rec.Boxes = append(rec.Boxes, b)
	}
	switch {
	case r.opt.Reject.image(in.id):
		rec.Status = StatusRejected
	case uncertain:
		rec.Status = StatusUncertain
	}
	return rec
}

// classifyCentred keeps the best fused box (Fuse sorts by score) as the image's one
// label; without a box above Uncertain the image is uncertain.
func (r *runner) classifyCentred(in input, rec imageRecord, fused []Fused) imageRecord {
	switch {
	case r.opt.Reject.image(in.id):
		rec.Status = StatusRejected
	case len(fused) == 0 || fused[0].Score < r.opt.Uncertain:
		rec.Status = StatusUncertain
	}
	if len(fused) > 0 && fused[0].Score >= r.opt.Uncertain {
		b := newBoxRecord(0, fused[0], r.opt.Target, r.teachers)
		b.Status = StatusAccepted
		if r.opt.Reject.box(in.id, 0) {
			b.Status, rec.Status = StatusRejected, StatusRejected
		}
		rec.Boxes = append(rec.Boxes, b)
	}
	return rec
}

// written reports whether an image record goes into the dataset. An object-centred
// image is never written without its box.
func (r *runner) written(rec imageRecord) bool {
	if r.opt.ObjectCentred && len(rec.accepted()) == 0 {
		return false
	}
	return rec.Status == StatusKept || rec.Status == StatusUncertain && r.opt.KeepUncertain
}

func (r *runner) count(rec imageRecord) {
	r.res.Images++
	switch rec.Status {
	case StatusKept:
		r.res.Kept++
		if len(rec.accepted()) == 0 {
			r.res.Negatives++
		}
	case StatusUncertain:
		r.res.Uncertain++
	case StatusRejected:
		r.res.Rejected++
	}
	if r.written(rec) {
		for _, b := range rec.accepted() {
			r.res.Boxes[b.class]++
		}
	}
}

// evaluate compares the image's accepted boxes with its truth labels.
func (r *runner) evaluate(in input, rec imageRecord) error {
	n := len(r.opt.Target)
	truth, ok, err := r.truth.boxes(in.base, n)
	if err != nil {
		return err
	}
	if !ok {
		r.res.Eval.NoTruth++
	}
	preds := make([][][4]float32, n)
	for _, b := range rec.accepted() {
		preds[b.class] = append(preds[b.class], b.normalized(rec.Width, rec.Height))
	}
	r.res.Eval.add(preds, truth, r.written(rec))
	return nil
}

// unusedRejections lists rejection-list lines that matched nothing in this run.
func (r *runner) unusedRejections() []string {
	boxes := map[string]int{} // image id -> number of boxes
	for _, rec := range r.records {
		boxes[rec.ID] = len(rec.Boxes)
	}
	var out []string
	for _, e := range r.opt.Reject.entries() {
		if n, ok := boxes[e.id]; !ok || e.box >= n {
			out = append(out, e.String())
		}
	}
	return out
}

// input is one image to label.
type input struct {
	path string // absolute
	base string // base name without extension: the truth label's name
	id   string // unique id in the output
}

// absPath is filepath.Abs, with the path in the error.
func absPath(p string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return a, nil
}
