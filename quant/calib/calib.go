// Package calib owns calibration: it runs images through the model (float activations,
// weights fake-quantized as the quantized model uses them), collects per-quantizer
// statistics of the activations that the quantizers will see, sets each quantizer's
// scale by a method (percentile, minmax, mse), and computes the integer thresholds
// (quant/qonnx.SetThresholds).
package calib

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/qonnx"
)

// Methods.
const (
	Percentile = "percentile"
	MinMax     = "minmax"
	MSE        = "mse"
)

// Recommended calibration set size (the guide's 20-50 images).
const (
	MinImages = 20
	MaxImages = 50
)

// Options tune [Calibrate].
type Options struct {
	Method     string    // percentile (default), minmax or mse
	Percentile float64   // for percentile: default 99.99
	Threads    int       // 0 = GOMAXPROCS
	Progress   io.Writer // progress bar destination; nil = none
}

// LayerStats are one quantizer's statistics and chosen scale.
type LayerStats struct {
	Layer   string  `json:"layer"`
	Index   int     `json:"index"`
	Bits    int     `json:"bits"`
	Signed  bool    `json:"signed,omitempty"`
	Count   int64   `json:"count"` // values seen
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Mean    float64 `json:"mean"`
	Zeros   float64 `json:"zero_fraction"`
	Clip    float64 `json:"clip"`    // the largest magnitude the quantizer represents
	Clipped float64 `json:"clipped"` // fraction of values beyond Clip
	Scale   float32 `json:"scale"`
	MSE     float64 `json:"mse"` // mean squared quantization error on the calibration data
}

// Result is what [Calibrate] measured and set.
type Result struct {
	Method       string                 `json:"method"`
	Percentile   float64                `json:"percentile,omitempty"`
	Images       []string               `json:"images"`
	Layers       []LayerStats           `json:"layers"`
	Thresholds   *qonnx.ThresholdReport `json:"thresholds"`
	Warnings     []string               `json:"warnings,omitempty"`
	Duration     time.Duration          `json:"duration_ns"`
	ImagesPerSec float64                `json:"images_per_sec"`
}

// Calibrate runs images (paths; letterboxed to the model input as darknet does)
// through the model and sets ActScale of every layer with an activation quantizer,
// then computes the integer thresholds. Warns (Result.Warnings) outside 20-50 images.
func Calibrate(m *quant.Model, images []string, opt Options) (*Result, error) {
	start := time.Now()
	if len(images) == 0 {
		return nil, errors.New("calibrate: no images")
	}
	opt, err := opt.Check()
	if err != nil {
		return nil, err
	}
	if err := m.InferShapes(); err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	qs := qonnx.QuantizedLayers(m)
	if len(qs) == 0 {
		return nil, errors.New("calibrate: the model has no activation quantizers (run quant activations first)")
	}
	res := &Result{Method: opt.Method, Images: images}
	if opt.Method == Percentile {
		res.Percentile = opt.Percentile
	}
	if n := len(images); n < MinImages || n > MaxImages {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d calibration images; the guide recommends %d-%d", n, MinImages, MaxImages))
	}
	shadow := FakeQuantWeights(m)
	e, err := floatengine.New(shadow, floatengine.Options{Threads: opt.Threads, KeepAll: true})
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	hists := make([]*histogram, len(qs))
	for k, i := range qs {
		hists[k] = newHistogram(m.Layers[i].Quant.ActSigned)
		if c := m.Layers[i].Conv; c != nil && c.Activation == quant.ActLHTan {
			hists[k].maxClip = 1 // lhtan saturates at 1: a larger clip only wastes levels
		}
	}
	var bar *progressbar.ProgressBar
	if opt.Progress != nil {
		bar = progressbar.NewOptions(len(images), progressbar.OptionSetWriter(opt.Progress),
			progressbar.OptionSetDescription("calibrate"), progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	for _, path := range images {
		in, err := LoadInput(path, m)
		if err != nil {
			return nil, fmt.Errorf("calibrate: %w", err)
		}
		if err := e.Forward(in); err != nil {
			return nil, fmt.Errorf("calibrate %s: %w", path, err)
		}
		for k, i := range qs {
			hists[k].add(e.Output(i))
		}
		if bar != nil {
			_ = bar.Add(1)
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	for k, i := range qs {
		l := m.Layers[i]
		q := l.Quant
		st := hists[k].choose(opt, q.ActBits)
		st.Layer, st.Index, st.Bits, st.Signed = l.Name, i, q.ActBits, q.ActSigned
		if st.Clip <= 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("layer %s: no positive activations on the calibration images; scale set to 1", l.Name))
			st.Scale = 1
		}
		q.ActScale = st.Scale
		res.Layers = append(res.Layers, st)
	}
	tr, err := qonnx.SetThresholds(m)
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	res.Thresholds = tr
	res.Duration = time.Since(start)
	res.ImagesPerSec = float64(len(images)) / res.Duration.Seconds()
	return res, nil
}

// FakeQuantWeights returns a copy of m whose convolution weights are the quantized
// weights (bipolar sign times alpha, or multi-bit), for the float engine.
func FakeQuantWeights(m *quant.Model) *quant.Model {
	s := qonnx.Clone(m)
	for _, l := range s.Layers {
		q := l.Quant
		if l.Kind != quant.KindConv || q == nil || q.WeightBits == 0 {
			continue
		}
		c := l.Conv
		per := len(c.Weights) / c.Filters
		for o := range c.Filters {
			for k := o * per; k < (o+1)*per; k++ {
				if q.WeightBits == 1 {
					a := float32(1)
					if q.WeightScale != nil {
						a = q.WeightScale[o]
					}
					c.Weights[k] = qonnx.BipolarSign(c.Weights[k]) * a
				} else {
					sc := q.WeightScale[o]
					c.Weights[k] = qonnx.QuantLevel(c.Weights[k], sc, q.WeightBits, true, true) * sc
				}
			}
		}
		c.Binary, c.XNOR = false, false
	}
	return s
}

// LoadInput decodes an image and letterboxes it to the model input (CHW, [0,1]).
func LoadInput(path string, m *quant.Model) ([]float32, error) {
	im, err := imageio.Load(path)
	if err != nil {
		return nil, err
	}
	if im.C != m.Input.C {
		return nil, fmt.Errorf("image %s has %d channels, the model wants %d", path, im.C, m.Input.C)
	}
	return imageio.Letterbox(im, m.Input.W, m.Input.H).Data, nil
}

// ListImages returns the images of a dataset: *.jpg, *.jpeg, *.png in a directory
// (sorted; also DIR/images and DIR/JPEGImages when DIR has none), or the paths in a
// darknet list file (one per line; relative paths are tried as given, then relative
// to the list file's directory).
func ListImages(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if st.IsDir() {
		for _, dir := range []string{path, filepath.Join(path, "images"), filepath.Join(path, "JPEGImages")} {
			imgs, err := imagesIn(dir)
			if err != nil || len(imgs) > 0 {
				return imgs, err
			}
		}
		return nil, fmt.Errorf("dataset %s: no .jpg or .png images", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if _, err := os.Stat(p); err != nil && !filepath.IsAbs(p) {
			if alt := filepath.Join(filepath.Dir(path), p); fileExists(alt) {
				p = alt
			}
		}
		if !fileExists(p) {
			return nil, fmt.Errorf("dataset list %s:%d: image %s not found", path, line, p)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dataset list %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dataset list %s: no image paths", path)
	}
	return out, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func imagesIn(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("dataset: %w", err)
	}
	var out []string
	for _, e := range ents {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".jpg", ".jpeg", ".png":
			if !e.IsDir() {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// Check returns opt with its defaults filled in, or an error naming a bad method or
// percentile.
func (opt Options) Check() (Options, error) {
	if opt.Method == "" {
		opt.Method = Percentile
	}
	if opt.Percentile == 0 {
		opt.Percentile = 99.99
	}
	switch opt.Method {
	case Percentile:
		if !(opt.Percentile > 0 && opt.Percentile <= 100) {
			return opt, fmt.Errorf("calibrate: percentile %g: want (0, 100]", opt.Percentile)
		}
	case MinMax, MSE:
	default:
		return opt, fmt.Errorf("calibrate: method %q: want percentile, minmax or mse", opt.Method)
	}
	return opt, nil
}

// ScaleOf is the scale [Calibrate] would choose for a bits-bit quantizer that has
// seen only the values x (quantization-aware training calibrates on its first batch).
func ScaleOf(x []float32, bits int, signed bool, opt Options) (float32, error) {
	opt, err := opt.Check()
	if err != nil {
		return 0, err
	}
	h := newHistogram(signed)
	h.add(x)
	return h.choose(opt, bits).Scale, nil
}

// histogram accumulates activation magnitudes in bins over [0, width*bins), doubling
// the width (merging bin pairs) when a larger value arrives.
type histogram struct {
	signed     bool
	bins       []int64
	width      float64
	count      int64
	zeros      int64
	min, max   float64
	sum        float64
	maxMag     float64
	negatives  int64
	negHist    []int64 // signed layers: magnitudes of negative values
	negMaxMag  float64
	firstBatch bool
	maxClip    float64 // > 0: the clip never exceeds it (lhtan layers: 1)
}

const histBins = 4096

func newHistogram(signed bool) *histogram {
	return &histogram{signed: signed, bins: make([]int64, histBins), negHist: make([]int64, histBins),
		min: math.Inf(1), max: math.Inf(-1), firstBatch: true}
}

func (h *histogram) add(x []float32) {
	var mx float64
	for _, v := range x {
		mx = max(mx, math.Abs(float64(v)))
	}
	if h.firstBatch {
		h.width = max(mx, 1e-12) / histBins * 1.0001
		h.firstBatch = false
	}
	for mx >= h.width*histBins {
		h.grow()
	}
	for _, f := range x {
		v := float64(f)
		h.count++
		h.sum += v
		h.min = min(h.min, v)
		h.max = max(h.max, v)
		if v == 0 {
			h.zeros++
		}
		a := math.Abs(v)
		b := min(int(a/h.width), histBins-1)
		if v < 0 {
			h.negHist[b]++
			h.negatives++
			h.negMaxMag = max(h.negMaxMag, a)
		} else {
			h.bins[b]++
			h.maxMag = max(h.maxMag, a)
		}
	}
}

func (h *histogram) grow() {
	for _, hist := range [][]int64{h.bins, h.negHist} {
		for i := 0; i < histBins/2; i++ {
			hist[i] = hist[2*i] + hist[2*i+1]
		}
		clear(hist[histBins/2:])
	}
	h.width *= 2
}

// choose picks the clip value and scale for a bits-bit quantizer.
func (h *histogram) choose(opt Options, bits int) LayerStats {
	st := LayerStats{Count: h.count, Min: h.min, Max: h.max}
	if h.count > 0 {
		st.Mean = h.sum / float64(h.count)
		st.Zeros = float64(h.zeros) / float64(h.count)
	}
	// The positive side decides the clip (ReLU outputs; for leaky layers the positive
	// side dominates too: negatives are 0.1x).
	_, hi := qonnx.LevelRange(bits, h.signed, false)
	levels := float64(hi)
	hist, total := h.bins, h.count-h.negatives
	switch opt.Method {
	case MinMax:
		st.Clip = h.maxMag
	case Percentile:
		st.Clip = h.percentile(hist, total, opt.Percentile/100)
	case MSE:
		st.Clip = h.bestMSE(bits)
	}
	if h.maxClip > 0 && st.Clip > h.maxClip {
		st.Clip = h.maxClip
	}
	if st.Clip > 0 {
		st.Scale = qonnx.RoundActScale(float32(st.Clip/levels), bits)
		st.Clip = float64(st.Scale) * levels
	}
	var above int64
	for i, n := range hist {
		if float64(i)*h.width >= st.Clip {
			above += n
		}
	}
	if h.count > 0 {
		st.Clipped = float64(above) / float64(h.count)
	}
	if st.Scale > 0 {
		st.MSE = h.quantMSE(float64(st.Scale), bits)
	}
	return st
}

// percentile is the value below which fraction p of the (non-negative) values lie,
// interpolated inside the bin.
func (h *histogram) percentile(hist []int64, total int64, p float64) float64 {
	if total <= 0 {
		return 0
	}
	target := p * float64(total)
	var cum float64
	for i, n := range hist {
		if cum+float64(n) >= target && n > 0 {
			frac := (target - cum) / float64(n)
			return min(h.maxMag, (float64(i)+frac)*h.width)
		}
		cum += float64(n)
	}
	return h.maxMag
}

// quantMSE is the mean squared error of quantizing the histogram (bin centres) with
// scale s.
func (h *histogram) quantMSE(s float64, bits int) float64 {
	lo, hi := qonnx.LevelRange(bits, h.signed, false)
	var sum float64
	for sign, hist := range [][]int64{h.bins, h.negHist} {
		for i, n := range hist {
			if n == 0 {
				continue
			}
			x := (float64(i) + 0.5) * h.width
			if sign == 1 {
				x = -x
			}
			q := max(float64(lo), min(math.RoundToEven(x/s), float64(hi)))
			d := x - q*s
			sum += float64(n) * d * d
		}
	}
	if h.count == 0 {
		return 0
	}
	return sum / float64(h.count)
}

// bestMSE searches the clip value with the least quantization error.
func (h *histogram) bestMSE(bits int) float64 {
	_, hi := qonnx.LevelRange(bits, h.signed, false)
	if h.maxMag <= 0 {
		return 0
	}
	best, bestErr := h.maxMag, math.Inf(1)
	for k := 1; k <= 200; k++ {
		c := h.maxMag * float64(k) / 200
		if err := h.quantMSE(c/float64(hi), bits); err < bestErr {
			best, bestErr = c, err
		}
	}
	return best
}

// Names returns the calibrated layer names, in order.
func (r *Result) Names() []string {
	var out []string
	for _, l := range r.Layers {
		out = append(out, l.Layer)
	}
	return slices.Clip(out)
}

// MetadataKey is the ONNX metadata entry of a calibrated model: Metadata's JSON.
const MetadataKey = "pynq.calibration"

// Metadata is a calibrated model's ONNX metadata entry (MetadataKey): method, images,
// scales.
func Metadata(res *Result) (map[string]string, error) {
	scales := map[string]float32{}
	for _, l := range res.Layers {
		scales[l.Layer] = l.Scale
	}
	js, err := json.Marshal(map[string]any{
		"method": res.Method, "percentile": res.Percentile, "images": len(res.Images),
		"scales": scales, "images_per_sec": res.ImagesPerSec, "warnings": res.Warnings,
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{MetadataKey: string(js)}, nil
}
