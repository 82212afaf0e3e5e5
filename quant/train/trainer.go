package train

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/calib"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/dataset"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/mapeval"
	"github.com/fpgadetector/pynq-agent/quant/quantengine"
)

// Options configure [Run].
type Options struct {
	Cfg string // darknet cfg with the training keys
	// Data is one darknet dataset (directory or list file) or several, each with an
	// optional draw weight: "a=3,b" (see ParseSources).
	Data string
	Val  string // optional validation dataset for mAP
	// Names are the model's class names. With them, training and validation labels are
	// matched to the model's classes by name and other classes are dropped; without,
	// by index.
	Names []string
	// LayerRates scale the learning rate per layer; scale 0 freezes (see LayerRate).
	LayerRates []LayerRate
	// BinaryMagnitude, when set, rescales the trained binary layers' latent weights
	// to +-BinaryMagnitude before training starts from Weights (ScaleBinaryWeights).
	BinaryMagnitude float64
	// PriorImages overrides the region loss's prior-matching period when non-zero
	// (RegionParams.PriorImages; negative: none).
	PriorImages int
	// FixedBN trains batch-normalized layers with their rolling statistics fixed
	// (Net.FixBatchNorm).
	FixedBN bool
	// KeepBest, with Val, ends the run with the model of the best validation mAP
	// (also written as <name>_best.weights + .momentum whenever the mAP improves).
	KeepBest bool
	Weights  string // optional initial weights (else darknet's random initialisation)
	Resume   string // optional checkpoint to resume from (iteration = seen / batch)
	OutDir   string // checkpoints go here (default ".")

	MaxBatches      int // overrides the cfg's max_batches when > 0
	Batch           int // overrides the cfg's batch when > 0 (subdivisions kept if they divide it)
	Threads         int // 0: GOMAXPROCS
	CheckpointEvery int // iterations between numbered checkpoints (0: 100)
	ValEvery        int // iterations between mAP evaluations (0: at checkpoints)
	Seed            uint64
	// QAT trains with the quantizers in the loop (see qat.go): the model's LayerQuant
	// annotations, or MarkW1A3's when the model has none.
	QAT       bool
	LearnClip bool // QAT: activation scales learn (PACT)
	// ClipInit is the calib method that sets unset activation scales on the first
	// batch: calib.MSE (default), calib.Percentile or calib.MinMax.
	ClipInit string
	// Prepare, when set, annotates the loaded model's quantizers before QAT (the
	// quantization flow's weight and activation steps); without it, MarkW1A3.
	Prepare func(*quant.Model) error

	// Progress receives one line per iteration (and mAP lines); nil discards them.
	Progress func(Progress)
}

// Progress is one iteration's report, as darknet's train_detector prints it.
type Progress struct {
	Iteration int
	Loss      float64 // this batch's cost per image
	AvgLoss   float64 // darknet's moving average: .9*avg + .1*loss
	Rate      float64
	Seconds   float64
	ImagesSec float64
	Seen      uint64
	Region    RegionStats
	MAP       float64 // -1 when not evaluated this iteration
}

func (p Progress) String() string {
	if p.Iteration == 0 {
		return fmt.Sprintf("0: before training, mAP@0.5 %.4f", p.MAP)
	}
	s := fmt.Sprintf("%d: %f, %f avg, %f rate, %.3f seconds, %d images, %.1f images/s, iou %.3f recall %.3f obj %.3f noobj %.4f",
		p.Iteration, p.Loss, p.AvgLoss, p.Rate, p.Seconds, p.Seen, p.ImagesSec, p.Region.AvgIoU, p.Region.Recall, p.Region.Obj, p.Region.NoObj)
	if p.MAP >= 0 {
		s += fmt.Sprintf(", mAP@0.5 %.4f", p.MAP)
	}
	return s
}

// Result is what a run produced.
type Result struct {
	Model      *quant.Model
	Iterations int
	Seen       uint64
	Final      string // path of the last weights written (the best ones with KeepBest)
	AvgLoss    float64
	// Best is the checkpoint of the highest validation mAP (BestMAP, at iteration
	// BestIteration); empty without validation.
	Best          string
	BestMAP       float64
	BestIteration int
}

// Run trains the cfg's model on the dataset until max_batches, writing
// <out>/<name>_<iter>.weights every CheckpointEvery iterations, <out>/<name>_last.weights
// (atomically, with a <name>_last.momentum sidecar holding the SGD momentum so a resume
// continues exactly) and <out>/<name>_final.weights at the end. Cancelling ctx stops
// after the current iteration and writes the last checkpoint.
func Run(ctx context.Context, opt Options) (*Result, error) {
	cfg, err := LoadConfig(opt.Cfg)
	if err != nil {
		return nil, err
	}
	switch opt.ClipInit {
	case "", calib.MSE, calib.Percentile, calib.MinMax:
	default:
		return nil, fmt.Errorf("train: clip init %q: want mse, percentile or minmax", opt.ClipInit)
	}
	if opt.Batch > 0 {
		if opt.Batch%cfg.Subdivisions != 0 {
			cfg.Subdivisions = 1
		}
		cfg.Batch = opt.Batch
	}
	if opt.MaxBatches > 0 {
		cfg.MaxBatches = opt.MaxBatches
	}
	m, seen, err := loadModel(opt)
	if err != nil {
		return nil, err
	}
	if len(m.Layers) == 0 || m.Layers[len(m.Layers)-1].Head == nil {
		return nil, fmt.Errorf("train: %s has no region head", opt.Cfg)
	}
	classes := m.Layers[len(m.Layers)-1].Head.Classes
	if opt.Names != nil && len(opt.Names) != classes {
		return nil, fmt.Errorf("train: %d class names for a model of %d classes (%s)", len(opt.Names), classes, opt.Cfg)
	}
	srcs, err := ParseSources(opt.Data)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	samples, err := LoadSources(srcs, classes, opt.Names)
	if err != nil {
		return nil, err
	}
	if opt.QAT {
		if err := prepareQAT(m, opt); err != nil {
			return nil, err
		}
	}
	if opt.BinaryMagnitude > 0 && opt.Resume == "" {
		if _, err := ScaleBinaryWeights(m, opt.LayerRates, opt.BinaryMagnitude); err != nil {
			return nil, err
		}
	}
	if opt.PriorImages != 0 {
		cfg.Region.PriorImages = opt.PriorImages
	}
	mini := cfg.MiniBatch()
	net, err := NewNet(m, mini, opt.Threads, cfg.Region)
	if err != nil {
		return nil, err
	}
	net.LearnClip, net.clipInit = opt.LearnClip, opt.ClipInit
	if err := net.SetLayerRates(opt.LayerRates); err != nil {
		return nil, err
	}
	if opt.FixedBN {
		net.FixBatchNorm()
	}
	net.Seen = seen
	out := opt.OutDir
	if out == "" {
		out = "."
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("train: output directory: %w", err)
	}
	if opt.Resume != "" {
		if err := net.loadMomentum(momentumPath(opt.Resume)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	tr := &trainer{opt: opt, cfg: cfg, net: net, out: out, avg: -1}
	return tr.loop(ctx, samples)
}

// prepareQAT annotates m's quantizers: opt.Prepare, else MarkW1A3 unless m has some.
func prepareQAT(m *quant.Model, opt Options) error {
	switch {
	case opt.Prepare != nil:
		if err := opt.Prepare(m); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	case !hasQuant(m):
		MarkW1A3(m)
	}
	return nil
}

type trainer struct {
	opt Options
	cfg Config
	net *Net
	out string
	avg float64
}

func (t *trainer) loop(ctx context.Context, samples []Sample) (*Result, error) {
	cfg, net, m := t.cfg, t.net, t.net.Model
	mini := uint64(net.Batch)
	ld := &loader{samples: samples, w: m.Input.W, h: m.Input.H, batch: net.Batch, seed: t.opt.Seed,
		aug:   Augment{Jitter: cfg.Jitter, Hue: cfg.Hue, Saturation: cfg.Saturation, Exposure: cfg.Exposure, Flip: cfg.Flip},
		cache: map[string]*imageio.Image{}}
	if err := ld.weighCumulative(); err != nil {
		return nil, err
	}
	batches := make(chan miniBatch, 2)
	done := make(chan struct{})
	defer close(done)
	go ld.run(net.Seen/mini, batches, done)

	every := t.opt.CheckpointEvery
	if every <= 0 {
		every = 100
	}
	res := &Result{Model: m, BestMAP: -1}
	var best *snapshot
	iter := int(net.Seen / uint64(cfg.Batch))
	if t.opt.Val != "" && iter == 0 && t.opt.KeepBest && scalesSet(m) {
		// The starting point competes for the best checkpoint: fine-tuning that only
		// loses accuracy then keeps what it started from.
		r, err := EvalMAP(m, t.opt.Val, t.opt.Names, t.opt.Threads)
		if err != nil {
			return nil, err
		}
		if best, err = t.saveBest(best); err != nil {
			return nil, err
		}
		res.Best, res.BestMAP = filepath.Join(t.out, m.Name+"_best.weights"), r.MAP
		if t.opt.Progress != nil {
			t.opt.Progress(Progress{MAP: r.MAP})
		}
	}
	for iter < cfg.MaxBatches {
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		var cost float64
		var stats RegionStats
		for range cfg.Subdivisions {
			mb := <-batches
			if mb.err != nil {
				return nil, mb.err
			}
			// As train_network_datum: seen counts the batch before its forward pass
			// (the region loss's seen < 12800 test sees it).
			net.Seen += mini
			net.Forward(mb.data, mb.truths, true)
			net.Backward(mb.data)
			cost += net.Loss
			stats = net.Stats
		}
		// update_network reads the rate at the batch number after this batch.
		iter = int(net.Seen / uint64(cfg.Batch))
		rate := cfg.Rate(iter)
		net.Update(rate, cfg.Momentum, cfg.Decay, cfg.Batch)
		loss := cost / float64(cfg.Subdivisions*net.Batch)
		if t.avg < 0 {
			t.avg = loss
		}
		t.avg = t.avg*.9 + loss*.1
		secs := time.Since(start).Seconds()
		p := Progress{Iteration: iter, Loss: loss, AvgLoss: t.avg, Rate: rate, Seconds: secs,
			ImagesSec: float64(cfg.Subdivisions*net.Batch) / secs, Seen: net.Seen, Region: stats, MAP: -1}
		if math.IsNaN(loss) {
			return nil, fmt.Errorf("train: loss is NaN at iteration %d (lower learning_rate or add burn_in)", iter)
		}
		checkpoint := iter%every == 0
		if checkpoint {
			if err := t.save(fmt.Sprintf("%s_%d.weights", m.Name, iter)); err != nil {
				return nil, err
			}
			if err := t.saveLast(); err != nil {
				return nil, err
			}
		}
		if t.opt.Val != "" && ((t.opt.ValEvery > 0 && iter%t.opt.ValEvery == 0) || (t.opt.ValEvery <= 0 && checkpoint)) {
			r, err := EvalMAP(m, t.opt.Val, t.opt.Names, t.opt.Threads)
			if err != nil {
				return nil, err
			}
			p.MAP = r.MAP
			if r.MAP > res.BestMAP {
				if best, err = t.saveBest(best); err != nil {
					return nil, err
				}
				res.Best, res.BestMAP, res.BestIteration = filepath.Join(t.out, m.Name+"_best.weights"), r.MAP, iter
			}
		}
		if t.opt.Progress != nil {
			t.opt.Progress(p)
		}
	}
	if err := t.saveLast(); err != nil {
		return nil, err
	}
	res.Final = filepath.Join(t.out, m.Name+"_last.weights")
	if iter >= cfg.MaxBatches {
		res.Final = filepath.Join(t.out, m.Name+"_final.weights")
		if err := t.save(m.Name + "_final.weights"); err != nil {
			return nil, err
		}
	}
	res.Iterations, res.Seen, res.AvgLoss = iter, net.Seen, t.avg
	if t.opt.KeepBest && best != nil {
		best.restore()
		res.Final = res.Best
	}
	refreshWeightScales(m)
	return res, ctx.Err()
}

// saveBest writes <name>_best.weights and .momentum and keeps the state in memory
// (reusing prev's buffers) for KeepBest.
func (t *trainer) saveBest(prev *snapshot) (*snapshot, error) {
	name := t.net.Model.Name + "_best.weights"
	if err := t.save(name); err != nil {
		return nil, err
	}
	if err := writeAtomic(momentumPath(filepath.Join(t.out, name)), t.net.writeMomentum); err != nil {
		return nil, err
	}
	return takeSnapshot(t.net.Model, prev), nil
}

func (t *trainer) saveLast() error {
	name := t.net.Model.Name + "_last.weights"
	if err := t.save(name); err != nil {
		return err
	}
	return writeAtomic(momentumPath(filepath.Join(t.out, name)), t.net.writeMomentum)
}

func (t *trainer) save(name string) error {
	return writeAtomic(filepath.Join(t.out, name), func(w io.Writer) error {
		return darknet.WriteWeights(w, t.net.Model, darknet.Header{Major: 0, Minor: 2, Seen: t.net.Seen})
	})
}

// writeAtomic writes a temporary file beside path and renames it over path.
func writeAtomic(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("train: checkpoint %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("train: checkpoint %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	return nil
}

func momentumPath(weights string) string {
	return weights[:len(weights)-len(filepath.Ext(weights))] + ".momentum"
}

// loadModel parses the cfg and loads initial weights: the resume checkpoint, the
// given weights (seen reset to 0, as darknet's -clear), or darknet's random init.
func loadModel(opt Options) (*quant.Model, uint64, error) {
	path := opt.Resume
	if path == "" {
		path = opt.Weights
	}
	if path == "" {
		m, err := darknet.LoadCfg(opt.Cfg, darknet.Options{})
		if err != nil {
			return nil, 0, err
		}
		InitWeights(m, opt.Seed)
		return m, 0, nil
	}
	m, err := darknet.LoadCfg(opt.Cfg, darknet.Options{})
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("train: weights: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("train: weights: %w", err)
	}
	h, err := darknet.ReadWeights(f, path, st.Size(), m)
	if err != nil {
		return nil, 0, err
	}
	if opt.Resume == "" {
		return m, 0, nil
	}
	return m, h.Seen, nil
}

// InitWeights gives every convolution darknet's initial weights: normal with standard
// deviation sqrt(2/(size*size*in/groups)); biases 0, batch-norm scale 1, mean 0,
// variance 1.
func InitWeights(m *quant.Model, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for _, l := range m.Layers {
		c := l.Conv
		if c == nil {
			continue
		}
		n := c.Filters * l.In.C / c.Groups * c.Size * c.Size
		scale := math.Sqrt(2 / float64(c.Size*c.Size*l.In.C/c.Groups))
		c.Weights = make([]float32, n)
		for i := range c.Weights {
			c.Weights[i] = float32(scale * rng.NormFloat64())
		}
		c.Bias = make([]float32, c.Filters)
		if c.BN != nil {
			c.BN = &quant.BatchNorm{Scale: fill(c.Filters, 1), Mean: make([]float32, c.Filters), Variance: fill(c.Filters, 1)}
		}
	}
}

func fill(n int, v float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// momentumMagic starts a .momentum file: the SGD momentum (darknet's *_updates
// arrays, which its .weights do not hold) per convolution in weights-file order, and
// for QAT layers the activation scale and its PACT update.
const momentumMagic = "PQMOM002"

func (n *Net) writeMomentum(w io.Writer) error {
	if _, err := io.WriteString(w, momentumMagic); err != nil {
		return err
	}
	for _, l := range n.layers {
		if c, ok := l.(*convLayer); ok {
			for _, v := range [][]float32{c.bUpd, c.sUpd, c.wUpd} {
				if err := binary.Write(w, binary.LittleEndian, v); err != nil {
					return err
				}
			}
			if c.q != nil {
				if err := binary.Write(w, binary.LittleEndian, []float64{float64(c.q.q.ActScale), c.q.clipUp}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (n *Net) loadMomentum(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("train: momentum: %w", err)
	}
	defer f.Close()
	magic := make([]byte, len(momentumMagic))
	if _, err := io.ReadFull(f, magic); err != nil || string(magic) != momentumMagic {
		return fmt.Errorf("train: momentum %s: not a momentum file (delete it to resume without momentum)", path)
	}
	for _, l := range n.layers {
		if c, ok := l.(*convLayer); ok {
			for _, v := range [][]float32{c.bUpd, c.sUpd, c.wUpd} {
				if err := binary.Read(f, binary.LittleEndian, v); err != nil {
					return fmt.Errorf("train: momentum %s: %w (does it belong to this cfg?)", path, err)
				}
			}
			if c.q != nil {
				var v [2]float64
				if err := binary.Read(f, binary.LittleEndian, v[:]); err != nil {
					return fmt.Errorf("train: momentum %s: %w (was it written by a QAT run?)", path, err)
				}
				c.q.q.ActScale, c.q.clipUp = float32(v[0]), v[1]
			}
		}
	}
	return nil
}

// EvalMAP runs m on a darknet validation set (letterboxed, thresh .005, NMS .45 as
// darknet's `detector valid`) and returns VOC2012 mAP at IoU .5. A model with
// quantizers (QAT) runs through them in the quantized engine, as its quantized
// forward pass computes; others in the float engine.
//
// With names (the model's classes), detections are named by them and only those
// classes' ground truth counts (a chair model on a 30-class set is scored on chairs);
// without, the model's class j is the dataset's j-th name.
func EvalMAP(m *quant.Model, val string, names []string, threads int) (*mapeval.Result, error) {
	ds, err := dataset.Open(val, dataset.Options{})
	if err != nil {
		return nil, fmt.Errorf("validation data: %w", err)
	}
	var e detector.Engine
	if hasQuant(m) {
		refreshWeightScales(m)
		e, err = quantengine.New(m, quantengine.Options{Threads: threads})
	} else {
		e, err = floatengine.New(m, floatengine.Options{Threads: threads})
	}
	if err != nil {
		return nil, err
	}
	det := detector.NewFloatWith(m, e, boxes.DarknetNMS)
	classNames := names
	if classNames == nil {
		classNames = ds.Names
	}
	var gts []mapeval.ImageGT
	var dets []mapeval.Detection
	const thresh = .005
	for _, im := range ds.Images {
		gt := mapeval.ImageGT{ID: im.ID}
		for _, o := range im.Objects {
			if names != nil && !slices.Contains(names, o.Class) {
				continue
			}
			gt.Objects = append(gt.Objects, mapeval.Object{Class: o.Class, Box: mapeval.Box(o.Box), Difficult: o.Difficult})
		}
		gts = append(gts, gt)
		img, err := imageio.Load(im.Path)
		if err != nil {
			return nil, fmt.Errorf("validation image: %w", err)
		}
		cands, err := det.Detect(img, thresh)
		if err != nil {
			return nil, err
		}
		dets = append(dets, mapeval.FromCandidates(im.ID, cands, classNames, thresh, img.W, img.H)...)
	}
	return mapeval.Evaluate(gts, dets, mapeval.Options{})
}

// scalesSet says whether every activation quantizer has its scale (QAT calibrates
// unset ones on the first batch).
func scalesSet(m *quant.Model) bool {
	for _, l := range m.Layers {
		if q := l.Quant; q != nil && q.ActBits > 0 && q.ActScale <= 0 {
			return false
		}
	}
	return true
}

func hasQuant(m *quant.Model) bool {
	for _, l := range m.Layers {
		if l.Quant != nil {
			return true
		}
	}
	return false
}
