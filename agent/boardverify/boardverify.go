// Package boardverify checks a board against the host reference: every image of a
// validation set goes through the board (the deployed agent's POST /api/verify, or the
// same agent code on the FPGA simulation in-process) and through the host reference
// (quant/qnnmo), and the two are compared bit for bit (packed engine inputs and outputs,
// localized to a layer and channel on a mismatch), detection by detection and by mAP.
// pynqctl verify --board prints its Report.
package boardverify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/fpgadetector/pynq-agent/agent"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/dataset"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/mapeval"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/web"
)

// Options say what to verify.
type Options struct {
	Board     string // HOST[:PORT] or URL of the agent, or "sim" (the agent on the FPGA simulation, in-process)
	Model     string // QNN-MO parameter directory: the host reference, the same the board runs
	Names     string // the model's class names file
	Dataset   string // validation images with ground truth
	GTNames   string // class names of darknet labels (default: classes.names in or beside Dataset)
	Token     string // the agent's bearer token (default $PYNQ_TOKEN)
	Bitstream string // sim: the .bit (its .hwh beside it); default the only .bit in ../bitstream beside Model
	// FloatCfg and FloatWeights name a float darknet model whose mAP is reported beside
	// (FloatNames: its class names, default Names).
	FloatCfg, FloatWeights, FloatNames string
	Thresh                             float32 // detection threshold (darknet's valid uses .005)
	Limit                              int     // verify only the first Limit images (0: all)
	Threads                            int     // host worker goroutines (0: GOMAXPROCS)
	// AgentLog is the in-process sim agent's logger (default: Run's); SimHook, when set,
	// sees that agent before verification starts (fault injection in tests).
	AgentLog *slog.Logger
	SimHook  func(*agent.Agent) error
}

// Run sends every dataset image through the board (Options.Board) and the host
// reference and compares them: the packed engine input and output digests (the first
// mismatching image re-run layer by layer to name the layer and channel where they
// part), the detections, and the mAP of both (and of a float model) against the
// ground truth. A report with Match false is a verification that found a difference,
// not an error.
func Run(ctx context.Context, o Options, log *slog.Logger) (*Report, error) {
	if o.Board == "" || o.Model == "" || o.Dataset == "" {
		return nil, errors.New("verify: need --board HOST|sim, --model DIR and --dataset DIR")
	}
	if log == nil {
		log = slog.Default()
	}
	names, err := loadModelNames(o.Names)
	if err != nil {
		return nil, err
	}
	ds, err := openVerifyDataset(o)
	if err != nil {
		return nil, err
	}
	images := ds.Images
	if o.Limit > 0 && len(images) > o.Limit {
		images = images[:o.Limit]
	}
	host, err := newHostRef(o.Model, o.Threads)
	if err != nil {
		return nil, err
	}
	b, err := openVerifyBoard(ctx, o, log)
	if err != nil {
		return nil, err
	}
	defer b.close()

	rep := &Report{Board: o.Board, Model: o.Model, Dataset: o.Dataset, Images: len(images), Thresh: o.Thresh,
		Decoder: qnnmo.ImageDecoder.String(), Feed: agent.FeedDuringVerify}
	var boardDets, hostDets []mapeval.Detection
	var firstBad *imageWork
	start := time.Now()
	engineMS := 0.0
	for _, im := range images {
		w, err := verifyImage(ctx, b, host, im, o.Thresh, names)
		if err != nil {
			return nil, err
		}
		engineMS += w.board.EngineMS
		rep.PerImage = append(rep.PerImage, w.check)
		boardDets = append(boardDets, mapDetections(im.ID, w.board.Detections, w.board.Width, w.board.Height)...)
		hostDets = append(hostDets, mapDetections(im.ID, w.host.dets, w.board.Width, w.board.Height)...)
		if !w.check.OutputMatch || !w.check.InputMatch {
			rep.Outputs.Mismatched++
			if firstBad == nil {
				firstBad = w
			}
		}
		if !w.check.DetectsMatch {
			rep.Detections.Mismatched++
			if rep.Detections.First == "" {
				rep.Detections.First = im.ID
			}
		}
	}
	rep.Timing.Seconds = time.Since(start).Seconds()
	if n := len(images); n > 0 {
		rep.Timing.ImagesPerSecond = float64(n) / rep.Timing.Seconds
		rep.Timing.BoardEngineMS = engineMS / float64(n)
	}
	rep.Outputs.Match = rep.Outputs.Mismatched == 0
	rep.Detections.Match = rep.Detections.Mismatched == 0
	if firstBad != nil {
		t := time.Now()
		if rep.Outputs.First, rep.Outputs.Localized, err = localize(ctx, b, host, firstBad, o.Thresh); err != nil {
			return nil, fmt.Errorf("verify: localize the mismatch in %s: %w", firstBad.id, err)
		}
		rep.Timing.LocalizeSeconds = time.Since(t).Seconds()
	}
	if err := verifyAccuracy(rep, ds, images, names, boardDets, hostDets, o); err != nil {
		return nil, err
	}
	rep.Match = rep.Outputs.Match && rep.Detections.Match && rep.Accuracy.Match
	return rep, nil
}

func loadModelNames(path string) ([]string, error) {
	if path == "" {
		return nil, errors.New("verify: need --names (the model's class names, e.g. voc.names)")
	}
	n, err := boxes.LoadNames(path)
	if err != nil {
		return nil, fmt.Errorf("verify: --names: %w", err)
	}
	return n, nil
}

// openVerifyDataset opens --dataset; darknet labels take their names from --gt-names,
// classes.names in the directory, or classes.names beside it.
func openVerifyDataset(o Options) (*dataset.Dataset, error) {
	opt := dataset.Options{NamesFile: o.GTNames}
	ds, err := dataset.Open(o.Dataset, opt)
	if err != nil && o.GTNames == "" && errors.Is(err, dataset.ErrNoNames) {
		beside := filepath.Join(filepath.Dir(filepath.Clean(o.Dataset)), "classes.names")
		if _, serr := os.Stat(beside); serr == nil {
			opt.NamesFile = beside
			ds, err = dataset.Open(o.Dataset, opt)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("verify: --dataset: %w (darknet labels need --gt-names or classes.names beside them)", err)
	}
	var withImages []dataset.Image
	for _, im := range ds.Images {
		if im.Path != "" {
			withImages = append(withImages, im)
		}
	}
	if len(withImages) == 0 {
		return nil, fmt.Errorf("verify: %s has no images", o.Dataset)
	}
	ds.Images = withImages
	return ds, nil
}

// hostRef is the host reference: the QNN detector on the host engine, its engine
// layers listed.
type hostRef struct {
	det    *detector.QNN
	layers []agent.EngineLayer
}

func newHostRef(dir string, threads int) (*hostRef, error) {
	m, err := qnnmo.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("verify: --model: %w", err)
	}
	net, err := qnnmo.NewNetwork(m, threads)
	if err != nil {
		return nil, fmt.Errorf("verify: --model %s: %w", dir, err)
	}
	det, err := detector.NewQNN(net, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("verify: --model %s: %w", dir, err)
	}
	layers, err := agent.EngineLayers(m)
	if err != nil {
		return nil, fmt.Errorf("verify: --model %s: %w", dir, err)
	}
	return &hostRef{det: det, layers: layers}, nil
}

// hostResult is the host reference on one image.
type hostResult struct {
	in, out   []byte
	inSHA     string
	outSHA    string
	dets      []web.Box
	img       *imageio.Image
	candCount int
}

// run decodes the file bytes as the agent does (stb_image for QNN-MO) and runs the
// detector's stages, keeping the packed engine buffers.
func (h *hostRef) run(data []byte, thresh float32, names []string) (*hostResult, error) {
	img, err := imageio.DecodeWith(bytes.NewReader(data), qnnmo.ImageDecoder)
	if err != nil {
		return nil, err
	}
	st := &detector.Frame{Image: img, Thresh: thresh}
	if err := detector.Run(context.Background(), h.det, st); err != nil {
		return nil, err
	}
	r := &hostResult{img: img, in: st.In, out: st.Out, candCount: len(st.Candidates)}
	cands := st.Candidates
	r.dets = []web.Box{}
	for _, o := range boxes.Objects(cands, thresh, names, img.W, img.H) {
		r.dets = append(r.dets, web.Box{Class: o.Name, ClassID: o.Class, Score: o.Score, Box: o.Box})
	}
	if r.inSHA, err = agent.PackedSHA256(r.in, h.det.Network().First.OutLayout()); err != nil {
		return nil, err
	}
	if r.outSHA, err = agent.PackedSHA256(r.out, h.det.Accelerator().OutLayout()); err != nil {
		return nil, err
	}
	return r, nil
}

// imageWork is one image's board and host results.
type imageWork struct {
	id    string
	data  []byte
	board *web.VerifyResult
	host  *hostResult
	check ImageCheck
}

func verifyImage(ctx context.Context, b *verifyBoard, h *hostRef, im dataset.Image, thresh float32, names []string) (*imageWork, error) {
	data, err := os.ReadFile(im.Path)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	w := &imageWork{id: im.ID, data: data}
	// The host reference computes while the board does: on a real board the two run
	// on different machines.
	hostErr := make(chan error, 1)
	go func() {
		var err error
		w.host, err = h.run(data, thresh, names)
		hostErr <- err
	}()
	w.board, err = b.verify(ctx, data, url.Values{"thresh": {fmtThresh(thresh)}})
	if herr := <-hostErr; herr != nil {
		return nil, fmt.Errorf("verify: host, %s: %w", im.Path, herr)
	}
	if err != nil {
		return nil, fmt.Errorf("verify: board, %s: %w", im.Path, err)
	}
	w.check = ImageCheck{
		ID: im.ID, InputMatch: w.board.InputSHA256 == w.host.inSHA,
		OutputBoard: w.board.OutputSHA256, OutputHost: w.host.outSHA, OutputMatch: w.board.OutputSHA256 == w.host.outSHA,
		Detections: len(w.board.Detections), DetectsMatch: slices.Equal(w.board.Detections, w.host.dets),
	}
	return w, nil
}

func fmtThresh(t float32) string { return strconv.FormatFloat(float64(t), 'g', -1, 32) }

// localize re-runs the first mismatching image layer by layer on both sides: the
// board's per-layer digests (?trace=1) against the host engine's RunTrace, then the
// first differing layer's full output (?dump=K) unpacked channel by channel.
func localize(ctx context.Context, b *verifyBoard, h *hostRef, w *imageWork, thresh float32) (*LayerMismatch, []LayerDigests, error) {
	if !w.check.InputMatch {
		// The engine input already differs: decoding, letterbox or the CPU's first
		// layer. Compare the input levels.
		return &LayerMismatch{Image: w.id, Stage: "input", Layer: -1, Channel: -1}, nil, nil
	}
	tr, err := b.verify(ctx, w.data, url.Values{"thresh": {fmtThresh(thresh)}, "trace": {"1"}})
	if err != nil {
		return nil, nil, err
	}
	outs, err := h.det.Network().Engine.RunTrace(w.host.in)
	if err != nil {
		return nil, nil, err
	}
	if len(tr.Layers) != len(outs) || len(outs) != len(h.layers) {
		return nil, nil, fmt.Errorf("board traced %d layers, host %d", len(tr.Layers), len(outs))
	}
	var ab []LayerDigests
	first := -1
	for k, l := range h.layers {
		sum, err := agent.PackedSHA256(outs[k], l.Layout)
		if err != nil {
			return nil, nil, err
		}
		d := LayerDigests{Index: k, Name: l.Name, Board: tr.Layers[k].SHA256, Host: sum, Match: tr.Layers[k].SHA256 == sum}
		ab = append(ab, d)
		if !d.Match && first < 0 {
			first = k
		}
	}
	if first < 0 {
		return &LayerMismatch{Image: w.id, Stage: "engine", Layer: -1, Channel: -1}, ab, fmt.Errorf("every traced layer matches while the outputs differed (a transient fault?)")
	}
	dump, err := b.verify(ctx, w.data, url.Values{"thresh": {fmtThresh(thresh)}, "dump": {strconv.Itoa(first)}})
	if err != nil {
		return nil, nil, err
	}
	if dump.Dump == nil {
		return nil, nil, fmt.Errorf("the agent sent no dump of layer %d", first)
	}
	m, err := diffLevels(dump.Dump.Data, outs[first], h.layers[first].Layout)
	if err != nil {
		return nil, nil, err
	}
	m.Image, m.Stage, m.Layer, m.LayerName = w.id, "engine", first, h.layers[first].Name
	return m, ab, nil
}

// diffLevels compares two packed outputs level by level: the first differing channel
// (lowest channel, then pixel in image order) and every differing channel.
func diffLevels(board, host []byte, l offload.Layout) (*LayerMismatch, error) {
	a, err := offload.Unpack(board, l)
	if err != nil {
		return nil, fmt.Errorf("board dump: %w", err)
	}
	b, err := offload.Unpack(host, l)
	if err != nil {
		return nil, fmt.Errorf("host trace: %w", err)
	}
	m := &LayerMismatch{Channel: -1}
	plane := l.Dim * l.Dim
	for c := 0; c < l.Channels; c++ {
		seen := false
		for p := 0; p < plane; p++ {
			i := c*plane + p
			if a[i] == b[i] {
				continue
			}
			m.Values++
			if !seen && len(m.Channels) < 32 {
				m.Channels = append(m.Channels, c)
			}
			seen = true
			if m.Channel < 0 {
				m.Channel, m.Y, m.X, m.Board, m.Host = c, p/l.Dim, p%l.Dim, a[i], b[i]
			}
		}
	}
	if m.Channel < 0 {
		return nil, errors.New("the layer's digests differ but its levels are equal")
	}
	return m, nil
}

// mapDetections converts detections as darknet's validate_detector writes them: the
// box +1 pixel (VOC coordinates), clipped to [1, w] x [1, h].
func mapDetections(id string, boxes []web.Box, w, h int) []mapeval.Detection {
	out := make([]mapeval.Detection, 0, len(boxes))
	for _, b := range boxes {
		out = append(out, mapeval.Detection{Image: id, Class: b.Class, Score: float64(b.Score), Box: mapeval.VOCBox(b.Box, w, h)})
	}
	return out
}

// verifyAccuracy evaluates board, host (and float) detections against the ground truth.
func verifyAccuracy(rep *Report, ds *dataset.Dataset, images []dataset.Image, names []string, board, host []mapeval.Detection, o Options) error {
	sub := *ds
	sub.Images = images
	classes, _ := mapeval.Classes(&sub, names)
	if len(classes) == 0 {
		return fmt.Errorf("verify: no class is both in the ground truth of %s and in --names", o.Dataset)
	}
	gt := mapeval.GroundTruth(&sub)
	opt := mapeval.Options{Classes: classes}
	var err error
	if rep.Accuracy.Board, err = mapeval.Evaluate(gt, board, opt); err != nil {
		return fmt.Errorf("verify: board mAP: %w", err)
	}
	if rep.Accuracy.Host, err = mapeval.Evaluate(gt, host, opt); err != nil {
		return fmt.Errorf("verify: host mAP: %w", err)
	}
	rep.Accuracy.Match = sameAP(rep.Accuracy.Board, rep.Accuracy.Host)
	if o.FloatCfg == "" {
		return nil
	}
	fdets, err := floatDetections(images, o)
	if err != nil {
		return err
	}
	if rep.Accuracy.Float, err = mapeval.Evaluate(gt, fdets, opt); err != nil {
		return fmt.Errorf("verify: float mAP: %w", err)
	}
	return nil
}

func sameAP(a, b *mapeval.Result) bool {
	if a.MAP != b.MAP || len(a.Classes) != len(b.Classes) {
		return false
	}
	for i := range a.Classes {
		if a.Classes[i].Class != b.Classes[i].Class || a.Classes[i].AP != b.Classes[i].AP {
			return false
		}
	}
	return true
}

// floatDetections runs the float darknet model (decoded with libjpeg, as darknet's
// OpenCV builds and `pynqctl detect` for float models do).
func floatDetections(images []dataset.Image, o Options) ([]mapeval.Detection, error) {
	if o.FloatWeights == "" {
		return nil, errors.New("verify: --float-cfg needs --float-weights")
	}
	m, err := darknet.Load(o.FloatCfg, o.FloatWeights, darknet.Options{})
	if err != nil {
		return nil, fmt.Errorf("verify: float model: %w", err)
	}
	d, err := detector.NewFloat(m, o.Threads, boxes.DarknetNMS)
	if err != nil {
		return nil, fmt.Errorf("verify: float model: %w", err)
	}
	names := o.FloatNames
	if names == "" {
		names = o.Names
	}
	n, err := boxes.LoadNames(names)
	if err != nil {
		return nil, fmt.Errorf("verify: float names: %w", err)
	}
	var out []mapeval.Detection
	for _, im := range images {
		img, err := imageio.LoadWith(im.Path, imageio.LibJPEG)
		if err != nil {
			return nil, err
		}
		objs, err := detector.Objects(d, img, o.Thresh, n)
		if err != nil {
			return nil, fmt.Errorf("verify: float model, %s: %w", im.Path, err)
		}
		var found []web.Box
		for _, o := range objs {
			found = append(found, web.Box{Class: o.Name, Score: o.Score, Box: o.Box})
		}
		out = append(out, mapDetections(im.ID, found, img.W, img.H)...)
	}
	return out, nil
}
