package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fpgadetector/pynq-agent/agent"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/dataset"
	"github.com/fpgadetector/pynq-agent/quant/detect"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/mapeval"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/quant/qnn"
	"github.com/fpgadetector/pynq-agent/web"
	"github.com/spf13/cobra"
)

func init() { rootCommands = append(rootCommands, newBoardVerifyCmd) }

// exitVerifyMismatch is the exit status when the board path and the host reference
// disagree (1 stays "the command failed").
const exitVerifyMismatch = 3

type boardVerifyFlags struct {
	board, model, names, dataset, gtNames, output, token string
	bitstream, floatCfg, floatWeights, floatNames        string
	thresh                                               float32
	limit, threads                                       int
}

func newBoardVerifyCmd(log *slog.Logger) *cobra.Command {
	var f boardVerifyFlags
	cmd := &cobra.Command{
		Use:   "verify --board HOST|sim --model DIR --names F --dataset DIR",
		Short: "Check on-board results against the host reference: engine outputs bit for bit, detections, mAP",
		Long: `Sends every dataset image through the board path (the deployed agent's
POST /api/verify, or with --board sim the same agent code on the FPGA simulation,
in-process) and through the host reference (quant/qnn: first layer, W1A3 engine,
last layer, region decode, NMS), decoding JPEGs as QNN-MO does (stb_image).
Compares the packed engine outputs by SHA-256 (on a mismatch the first such image is
re-run layer by layer to name the first differing layer and channel), the detections
(boxes, classes, scores exactly) and mAP / per-class AP against the dataset's ground
truth (and the float darknet model's with --float-cfg/--float-weights).
Exit status 0 only when everything matches, 3 when something differs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBoardVerify(cmd.Context(), cmd.OutOrStdout(), log, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.board, "board", "", "the agent: HOST[:PORT] or URL (port 8080 by default), or sim (the agent on the FPGA simulation, in-process)")
	fl.StringVar(&f.model, "model", "", "QNN-MO parameter directory (the host reference; the same the board runs)")
	fl.StringVar(&f.names, "names", "", "the model's class names file (e.g. voc.names)")
	fl.StringVar(&f.dataset, "dataset", "", "validation images with ground truth (darknet labels or a VOC tree)")
	fl.StringVar(&f.gtNames, "gt-names", "", "class names of darknet labels (default: classes.names in or beside --dataset)")
	fl.StringVar(&f.output, "output", "", "write the JSON report here")
	fl.StringVar(&f.token, "token", "", "the agent's bearer token (default $PYNQ_TOKEN)")
	fl.StringVar(&f.bitstream, "bitstream", "", "sim: the .bit (its .hwh beside it); default: the only .bit in ../bitstream beside --model")
	fl.StringVar(&f.floatCfg, "float-cfg", "", "float darknet cfg to compare mAP with (optional)")
	fl.StringVar(&f.floatWeights, "float-weights", "", "float darknet weights (with --float-cfg)")
	fl.StringVar(&f.floatNames, "float-names", "", "class names of the float model (default --names)")
	fl.Float32Var(&f.thresh, "thresh", 0.005, "detection threshold (darknet's valid uses .005 for mAP)")
	fl.IntVar(&f.limit, "limit", 0, "verify only the first N images (0 = all)")
	fl.IntVar(&f.threads, "threads", 0, "host worker goroutines (0 = GOMAXPROCS)")
	return cmd
}

// boardReport is the JSON report.
type boardReport struct {
	Board      string         `json:"board"`
	Model      string         `json:"model"`
	Dataset    string         `json:"dataset"`
	Images     int            `json:"images"`
	Thresh     float32        `json:"thresh"`
	Decoder    string         `json:"decoder"`
	Match      bool           `json:"match"`
	Outputs    outputsCheck   `json:"engine_outputs"`
	Detections detectionCheck `json:"detections"`
	Accuracy   accuracyCheck  `json:"accuracy"`
	Timing     verifyTiming   `json:"timing"`
	PerImage   []imageCheck   `json:"per_image"`
	Feed       string         `json:"feed_during_verification"`
}

type outputsCheck struct {
	Match      bool            `json:"match"`
	Mismatched int             `json:"mismatched_images"`
	First      *layerMismatch  `json:"first_mismatch,omitempty"`
	Localized  []layerDigestAB `json:"layers,omitempty"` // the first mismatching image's layers
}

// layerMismatch locates the first difference of the first mismatching image.
type layerMismatch struct {
	Image string `json:"image"`
	// Stage is "input" when the packed engine inputs already differ (decode, letterbox
	// or first layer), else "engine".
	Stage     string `json:"stage"`
	Layer     int    `json:"layer"` // engine layer index (0 = first engine layer), -1 for input
	LayerName string `json:"layer_name,omitempty"`
	Channel   int    `json:"channel"`
	Y         int    `json:"y"`
	X         int    `json:"x"`
	Board     uint8  `json:"board_level"`
	Host      uint8  `json:"host_level"`
	// Channels lists every differing channel of that layer (up to 32); Values counts
	// the differing levels.
	Channels []int `json:"channels"`
	Values   int   `json:"values"`
}

type layerDigestAB struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	Board string `json:"board_sha256"`
	Host  string `json:"host_sha256"`
	Match bool   `json:"match"`
}

type detectionCheck struct {
	Match      bool   `json:"match"`
	Mismatched int    `json:"mismatched_images"`
	First      string `json:"first_mismatch,omitempty"`
}

type accuracyCheck struct {
	Match bool            `json:"match"` // board and host mAP and every class AP equal
	Board *mapeval.Result `json:"board"`
	Host  *mapeval.Result `json:"host"`
	Float *mapeval.Result `json:"float,omitempty"`
}

type verifyTiming struct {
	Seconds         float64 `json:"seconds"`
	ImagesPerSecond float64 `json:"images_per_second"`
	BoardEngineMS   float64 `json:"board_engine_ms_mean"`
	LocalizeSeconds float64 `json:"localize_seconds,omitempty"`
}

type imageCheck struct {
	ID           string `json:"id"`
	InputMatch   bool   `json:"input_match"`
	OutputBoard  string `json:"output_sha256_board"`
	OutputHost   string `json:"output_sha256_host"`
	OutputMatch  bool   `json:"output_match"`
	Detections   int    `json:"detections"`
	DetectsMatch bool   `json:"detections_match"`
}

// simAgentHook, when set (tests), sees the in-process sim agent before verification
// starts (fault injection).
var simAgentHook func(*agent.Agent) error

func runBoardVerify(ctx context.Context, out io.Writer, log *slog.Logger, f boardVerifyFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if f.board == "" || f.model == "" || f.dataset == "" {
		return errors.New("verify: need --board HOST|sim, --model DIR and --dataset DIR")
	}
	names, err := loadModelNames(f.names)
	if err != nil {
		return err
	}
	ds, err := openVerifyDataset(f)
	if err != nil {
		return err
	}
	images := ds.Images
	if f.limit > 0 && len(images) > f.limit {
		images = images[:f.limit]
	}
	host, err := newHostRef(f.model, f.threads)
	if err != nil {
		return err
	}
	b, err := openVerifyBoard(ctx, f, log)
	if err != nil {
		return err
	}
	defer b.close()

	rep := &boardReport{Board: f.board, Model: f.model, Dataset: f.dataset, Images: len(images), Thresh: f.thresh,
		Decoder: qnn.ImageDecoder.String(), Feed: agent.FeedDuringVerify}
	var boardDets, hostDets []mapeval.Detection
	var firstBad *imageWork
	start := time.Now()
	engineMS := 0.0
	for _, im := range images {
		w, err := verifyImage(ctx, b, host, im, f.thresh, names)
		if err != nil {
			return err
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
		if rep.Outputs.First, rep.Outputs.Localized, err = localize(ctx, b, host, firstBad, f.thresh); err != nil {
			return fmt.Errorf("verify: localize the mismatch in %s: %w", firstBad.id, err)
		}
		rep.Timing.LocalizeSeconds = time.Since(t).Seconds()
	}
	if err := verifyAccuracy(rep, ds, images, names, boardDets, hostDets, f); err != nil {
		return err
	}
	rep.Match = rep.Outputs.Match && rep.Detections.Match && rep.Accuracy.Match
	if f.output != "" {
		if err := writeBoardReport(f.output, rep); err != nil {
			return err
		}
	}
	printBoardVerify(out, rep)
	if !rep.Match {
		return &exitError{code: exitVerifyMismatch, err: errors.New(mismatchSummary(rep))}
	}
	return nil
}

func loadModelNames(path string) ([]string, error) {
	if path == "" {
		return nil, errors.New("verify: need --names (the model's class names, e.g. voc.names)")
	}
	n, err := detect.LoadNames(path)
	if err != nil {
		return nil, fmt.Errorf("verify: --names: %w", err)
	}
	return n, nil
}

// openVerifyDataset opens --dataset; darknet labels take their names from --gt-names,
// classes.names in the directory, or classes.names beside it.
func openVerifyDataset(f boardVerifyFlags) (*dataset.Dataset, error) {
	opt := dataset.Options{NamesFile: f.gtNames}
	ds, err := dataset.Open(f.dataset, opt)
	if err != nil && f.gtNames == "" && errors.Is(err, dataset.ErrNoNames) {
		beside := filepath.Join(filepath.Dir(filepath.Clean(f.dataset)), "classes.names")
		if _, serr := os.Stat(beside); serr == nil {
			opt.NamesFile = beside
			ds, err = dataset.Open(f.dataset, opt)
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
		return nil, fmt.Errorf("verify: %s has no images", f.dataset)
	}
	ds.Images = withImages
	return ds, nil
}

// hostRef is the host reference: quant/qnn's pipeline with its layers exposed.
type hostRef struct {
	det    *qnn.Detector
	head   int
	layers []agent.EngineLayer
}

func newHostRef(dir string, threads int) (*hostRef, error) {
	m, err := qnn.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("verify: --model: %w", err)
	}
	det, err := qnn.NewDetector(m, threads)
	if err != nil {
		return nil, fmt.Errorf("verify: --model %s: %w", dir, err)
	}
	layers, err := agent.EngineLayers(m)
	if err != nil {
		return nil, fmt.Errorf("verify: --model %s: %w", dir, err)
	}
	return &hostRef{det: det, head: m.Heads()[0], layers: layers}, nil
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
// pipeline step by step (the steps of qnn.Detector.Detect) keeping the packed buffers.
func (h *hostRef) run(data []byte, thresh float32, names []string) (*hostResult, error) {
	img, err := imageio.DecodeWith(bytes.NewReader(data), qnn.ImageDecoder)
	if err != nil {
		return nil, err
	}
	r := &hostResult{img: img}
	if r.in, err = h.det.Input(img); err != nil {
		return nil, err
	}
	if r.out, err = h.det.Engine.Run(r.in); err != nil {
		return nil, err
	}
	head, err := h.det.Output(r.out)
	if err != nil {
		return nil, err
	}
	cands, err := detect.Decode(h.det.Model, map[int][]float32{h.head: head}, img.W, img.H, thresh)
	if err != nil {
		return nil, err
	}
	cands = detect.NMS(cands, detect.DarknetNMS)
	r.candCount = len(cands)
	r.dets = []web.Box{}
	for _, o := range detect.Objects(cands, thresh, names, img.W, img.H) {
		r.dets = append(r.dets, web.Box{Class: o.Name, ClassID: o.Class, Score: o.Score, Box: o.Box})
	}
	if r.inSHA, err = agent.PackedSHA256(r.in, h.det.First.OutLayout()); err != nil {
		return nil, err
	}
	if r.outSHA, err = agent.PackedSHA256(r.out, h.det.Engine.OutLayout()); err != nil {
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
	check imageCheck
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
	w.check = imageCheck{
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
func localize(ctx context.Context, b *verifyBoard, h *hostRef, w *imageWork, thresh float32) (*layerMismatch, []layerDigestAB, error) {
	if !w.check.InputMatch {
		// The engine input already differs: decoding, letterbox or the CPU's first
		// layer. Compare the input levels.
		return &layerMismatch{Image: w.id, Stage: "input", Layer: -1, Channel: -1}, nil, nil
	}
	tr, err := b.verify(ctx, w.data, url.Values{"thresh": {fmtThresh(thresh)}, "trace": {"1"}})
	if err != nil {
		return nil, nil, err
	}
	outs, err := h.det.Engine.RunTrace(w.host.in)
	if err != nil {
		return nil, nil, err
	}
	if len(tr.Layers) != len(outs) || len(outs) != len(h.layers) {
		return nil, nil, fmt.Errorf("board traced %d layers, host %d", len(tr.Layers), len(outs))
	}
	var ab []layerDigestAB
	first := -1
	for k, l := range h.layers {
		sum, err := agent.PackedSHA256(outs[k], l.Layout)
		if err != nil {
			return nil, nil, err
		}
		d := layerDigestAB{Index: k, Name: l.Name, Board: tr.Layers[k].SHA256, Host: sum, Match: tr.Layers[k].SHA256 == sum}
		ab = append(ab, d)
		if !d.Match && first < 0 {
			first = k
		}
	}
	if first < 0 {
		return &layerMismatch{Image: w.id, Stage: "engine", Layer: -1, Channel: -1}, ab, fmt.Errorf("every traced layer matches while the outputs differed (a transient fault?)")
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
func diffLevels(board, host []byte, l offload.Layout) (*layerMismatch, error) {
	a, err := offload.Unpack(board, l)
	if err != nil {
		return nil, fmt.Errorf("board dump: %w", err)
	}
	b, err := offload.Unpack(host, l)
	if err != nil {
		return nil, fmt.Errorf("host trace: %w", err)
	}
	m := &layerMismatch{Channel: -1}
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
func verifyAccuracy(rep *boardReport, ds *dataset.Dataset, images []dataset.Image, names []string, board, host []mapeval.Detection, f boardVerifyFlags) error {
	sub := *ds
	sub.Images = images
	classes, _ := mapeval.Classes(&sub, names)
	if len(classes) == 0 {
		return fmt.Errorf("verify: no class is both in the ground truth of %s and in --names", f.dataset)
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
	if f.floatCfg == "" {
		return nil
	}
	fdets, err := floatDetections(images, f)
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
func floatDetections(images []dataset.Image, f boardVerifyFlags) ([]mapeval.Detection, error) {
	if f.floatWeights == "" {
		return nil, errors.New("verify: --float-cfg needs --float-weights")
	}
	m, err := darknet.Load(f.floatCfg, f.floatWeights, darknet.Options{})
	if err != nil {
		return nil, fmt.Errorf("verify: float model: %w", err)
	}
	d, err := detector.NewFloat(m, f.threads, detect.DarknetNMS)
	if err != nil {
		return nil, fmt.Errorf("verify: float model: %w", err)
	}
	names := f.floatNames
	if names == "" {
		names = f.names
	}
	n, err := detect.LoadNames(names)
	if err != nil {
		return nil, fmt.Errorf("verify: float names: %w", err)
	}
	var out []mapeval.Detection
	for _, im := range images {
		img, err := imageio.LoadWith(im.Path, imageio.LibJPEG)
		if err != nil {
			return nil, err
		}
		cands, err := d.Detect(img, f.thresh)
		if err != nil {
			return nil, fmt.Errorf("verify: float model, %s: %w", im.Path, err)
		}
		var boxes []web.Box
		for _, o := range detect.Objects(cands, f.thresh, n, img.W, img.H) {
			boxes = append(boxes, web.Box{Class: o.Name, Score: o.Score, Box: o.Box})
		}
		out = append(out, mapDetections(im.ID, boxes, img.W, img.H)...)
	}
	return out, nil
}

// verifyBoard talks to an agent's /api/verify: the board's over the network, or the
// in-process sim agent's through httptest (the same handler and agent code).
type verifyBoard struct {
	base   string
	token  string
	client *http.Client
	close  func()
}

func openVerifyBoard(ctx context.Context, f boardVerifyFlags, log *slog.Logger) (*verifyBoard, error) {
	token := f.token
	if token == "" {
		token = os.Getenv("PYNQ_TOKEN")
	}
	if f.board == "sim" {
		return openSimBoard(ctx, f, log)
	}
	if token == "" {
		return nil, errors.New("verify: the agent needs its token: --token or $PYNQ_TOKEN (server.token on the board)")
	}
	base, err := agentURL(f.board)
	if err != nil {
		return nil, err
	}
	return &verifyBoard{base: base, token: token, client: &http.Client{Timeout: 5 * time.Minute}, close: func() {}}, nil
}

// agentURL turns HOST, HOST:PORT or a URL into the agent's base URL.
func agentURL(board string) (string, error) {
	if !strings.Contains(board, "://") {
		if _, _, err := net.SplitHostPort(board); err != nil {
			board = net.JoinHostPort(strings.Trim(board, "[]"), "8080")
		}
		board = "http://" + board
	}
	u, err := url.Parse(board)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("verify: --board %q: want HOST[:PORT], a URL or sim", board)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// openSimBoard starts the agent on the FPGA simulation in-process and serves its API
// on a loopback httptest server.
func openSimBoard(ctx context.Context, f boardVerifyFlags, log *slog.Logger) (*verifyBoard, error) {
	bit := f.bitstream
	if bit == "" {
		bits, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Clean(f.model)), "bitstream", "*.bit"))
		if len(bits) != 1 {
			return nil, errors.New("verify: --board sim needs --bitstream (the QNN overlay's .bit, its .hwh beside it)")
		}
		bit = bits[0]
	}
	cfg := agent.Defaults()
	cfg.Backend = agent.BackendSim
	cfg.Bitstream.Path = bit
	cfg.Model.Dir = f.model
	cfg.Model.Names = f.names
	cfg.Model.Threads = f.threads
	cfg.Source.Input = f.dataset
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("verify: sim agent: %w", err)
	}
	a, err := agent.New(ctx, cfg, agentLog(log))
	if err != nil {
		return nil, fmt.Errorf("verify: sim agent: %w", err)
	}
	if simAgentHook != nil {
		if err := simAgentHook(a); err != nil {
			a.Close()
			return nil, err
		}
	}
	const token = "verify-sim"
	hub := web.NewHub(web.HubOptions{Logger: log})
	srv := httptest.NewServer(web.NewServer(a, hub, web.ServerOptions{Token: token, Logger: log}))
	return &verifyBoard{base: srv.URL, token: token, client: srv.Client(), close: func() {
		srv.Close()
		hub.Close()
		a.Close()
	}}, nil
}

// verify posts one image.
func (b *verifyBoard) verify(ctx context.Context, image []byte, q url.Values) (*web.VerifyResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.base+"/api/verify?"+q.Encode(), bytes.NewReader(image))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		hint := ""
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = " (check --token against the agent's server.token)"
		case http.StatusNotFound:
			hint = " (the agent predates /api/verify: deploy this version)"
		}
		return nil, fmt.Errorf("agent: %s: %s%s", resp.Status, strings.TrimSpace(string(msg)), hint)
	}
	var res web.VerifyResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, fmt.Errorf("agent: verify response: %w", err)
	}
	return &res, nil
}

func writeBoardReport(path string, rep *boardReport) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("verify: --output: %w", err)
	}
	return nil
}

func yesNo(ok bool) string {
	if ok {
		return "match"
	}
	return "DIFFER"
}

func printBoardVerify(out io.Writer, r *boardReport) {
	fmt.Fprintf(out, "verify %s against the host reference: %d images of %s (decoder %s, thresh %g)\n",
		r.Board, r.Images, r.Dataset, r.Decoder, r.Thresh)
	fmt.Fprintf(out, "engine outputs: %s (%d of %d images differ)\n", yesNo(r.Outputs.Match), r.Outputs.Mismatched, r.Images)
	if m := r.Outputs.First; m != nil {
		if m.Stage == "input" {
			fmt.Fprintf(out, "  first mismatch: %s, the packed engine input already differs (decode, letterbox or first layer)\n", m.Image)
		} else {
			fmt.Fprintf(out, "  first mismatch: %s, layer %d (%s), channel %d at y=%d x=%d: board %d, host %d (%d values in channels %v)\n",
				m.Image, m.Layer, m.LayerName, m.Channel, m.Y, m.X, m.Board, m.Host, m.Values, m.Channels)
		}
	}
	fmt.Fprintf(out, "detections:     %s (%d of %d images differ)\n", yesNo(r.Detections.Match), r.Detections.Mismatched, r.Images)
	fmt.Fprintf(out, "accuracy:       %s (mAP board %.2f %%, host %.2f %%", yesNo(r.Accuracy.Match), 100*r.Accuracy.Board.MAP, 100*r.Accuracy.Host.MAP)
	if r.Accuracy.Float != nil {
		fmt.Fprintf(out, ", float %.2f %%", 100*r.Accuracy.Float.MAP)
	}
	fmt.Fprintln(out, ")")
	w := len("class")
	for _, c := range r.Accuracy.Board.Classes {
		w = max(w, len(c.Class))
	}
	fmt.Fprintf(out, "  %-*s %8s %8s", w, "class", "board AP", "host AP")
	if r.Accuracy.Float != nil {
		fmt.Fprintf(out, " %8s", "float AP")
	}
	fmt.Fprintln(out)
	for i, c := range r.Accuracy.Board.Classes {
		fmt.Fprintf(out, "  %-*s %8.2f %8.2f", w, c.Class, 100*c.AP, 100*r.Accuracy.Host.Classes[i].AP)
		if r.Accuracy.Float != nil {
			if fc, ok := r.Accuracy.Float.Class(c.Class); ok {
				fmt.Fprintf(out, " %8.2f", 100*fc.AP)
			}
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "%.1f s, %.2f images/s (board engine %.0f ms/image); the live feed was %s\n",
		r.Timing.Seconds, r.Timing.ImagesPerSecond, r.Timing.BoardEngineMS, r.Feed)
	if r.Timing.LocalizeSeconds > 0 {
		fmt.Fprintf(out, "mismatch localized in %.2f s\n", r.Timing.LocalizeSeconds)
	}
	if r.Match {
		fmt.Fprintln(out, "RESULT: the board matches the host reference")
	} else {
		fmt.Fprintln(out, "RESULT: the board differs from the host reference")
	}
}

// mismatchSummary is the error of a failed verification.
func mismatchSummary(r *boardReport) string {
	var parts []string
	if m := r.Outputs.First; m != nil && m.Stage == "engine" {
		parts = append(parts, fmt.Sprintf("engine output of %s differs first in layer %d (%s), channel %d", m.Image, m.Layer, m.LayerName, m.Channel))
	} else if m != nil {
		parts = append(parts, fmt.Sprintf("engine input of %s differs", m.Image))
	}
	if !r.Detections.Match {
		parts = append(parts, fmt.Sprintf("detections differ on %d images", r.Detections.Mismatched))
	}
	if !r.Accuracy.Match {
		parts = append(parts, fmt.Sprintf("mAP board %.4f vs host %.4f", r.Accuracy.Board.MAP, r.Accuracy.Host.MAP))
	}
	return "verify: " + strings.Join(parts, "; ")
}
