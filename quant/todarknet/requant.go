package todarknet

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"slices"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
)

// WeightsHeader is the .weights header the export writes (version 0.2, 64-bit seen).
var WeightsHeader = darknet.Header{Major: 0, Minor: 2}

// WriteFiles writes the float model as cfgPath (with the training options of
// TrainingCfg, when set) and weightsPath, and the sidecar beside the cfg ([SidecarPath]).
func (r *Result) WriteFiles(cfgPath, weightsPath string) error {
	var cfg, weights bytes.Buffer
	if err := darknet.WriteCfg(&cfg, r.Model); err != nil {
		return err
	}
	cfgData := cfg.Bytes()
	if a := r.Sidecar.FloatActivation; a != "" && a != FloatReLU {
		cfgData = setActivations(cfgData, r.Sidecar.quantizedLayers(), a)
	}
	if r.TrainingCfg != nil {
		var err error
		if cfgData, r.AddedKeys, err = MergeTrainingKeys(cfgData, r.TrainingCfg); err != nil {
			return fmt.Errorf("export darknet: %w", err)
		}
	}
	if err := darknet.WriteWeights(&weights, r.Model, WeightsHeader); err != nil {
		return err
	}
	side, err := r.Sidecar.Marshal()
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{cfgPath, cfgData}, {weightsPath, weights.Bytes()}, {SidecarPath(cfgPath), side}} {
		if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
			return fmt.Errorf("export darknet: %w", err)
		}
	}
	return nil
}

// Requantize applies a sidecar to a float model (e.g. darknet.Load of an exported cfg),
// in place, giving back the quantized model the sidecar was exported from:
//   - every listed layer gets Quant{WeightBits, ActBits, ActScale};
//   - bipolar layers (weight_bits 1) get weights w > 0 ? +1 : -1 (darknet's binarization;
//     the filter's mean |w| moves into the thresholds);
//   - threshold layers get integer thresholds and invert flags from their batch norm
//     and bias, which they lose (the engine ignores them), by quant/qonnx's one
//     derivation ([qonnx.LevelFunc.Thresholds]), as quant calibrate and quant qnn-dir
//     derive them;
//   - other listed layers have their batch norm folded into weights and bias, so that a
//     float engine without batch norm (QNN-MO's first layer) can run them.
//
// Thresholds beyond the layer's reachable acc range [-R, R] become -R (always) or R+1
// (never).
func Requantize(m *quant.Model, sc *Sidecar) error {
	if err := m.InferShapes(); err != nil {
		return fmt.Errorf("requantize: %w", err)
	}
	for _, sl := range sc.Layers {
		if err := sl.check(); err != nil {
			return fmt.Errorf("requantize: sidecar layer %d: %w", sl.Index, err)
		}
		if err := sl.matches(m, sl.Index); err != nil {
			return fmt.Errorf("requantize: %w", err)
		}
		if sl.WeightBits > 1 {
			return fmt.Errorf("requantize: sidecar layer %d: %d-bit weights: a darknet model holds float or binary weights only (run it through pynqctl quant weights instead)", sl.Index, sl.WeightBits)
		}
		m.Layers[sl.Index].Quant = &quant.LayerQuant{WeightBits: sl.WeightBits, ActBits: sl.ActBits, ActScale: sl.ActScale}
	}
	for _, sl := range sc.Layers {
		l := m.Layers[sl.Index]
		var err error
		if sl.Thresholds {
			err = thresholdLayer(m, l, sl)
		} else {
			floatLayer(m, l, sl)
		}
		if err != nil {
			return fmt.Errorf("requantize: layer %d (%s): %w", sl.Index, l.Name, err)
		}
	}
	return nil
}

// matches checks that layer i of m is the convolution sl describes.
func (sl SidecarLayer) matches(m *quant.Model, i int) error {
	if i < 0 || i >= len(m.Layers) || m.Layers[i].Kind != quant.KindConv || (sl.Filters > 0 && m.Layers[i].Conv.Filters != sl.Filters) {
		return fmt.Errorf("sidecar layer %d (%s, %d filters) is not a convolution of the model (%d layers) with those filters: the sidecar belongs to another cfg", sl.Index, sl.Name, sl.Filters, len(m.Layers))
	}
	return nil
}

// ApplyScales gives the listed layers of m the sidecar's activation quantizers
// (ActBits, ActScale) and nothing else, for a quantization flow that binarizes weights
// and derives thresholds itself (issue 4's `pynqctl quant`): with these scales instead of
// calibrated ones it must give back the thresholds the model was exported from. Layers
// are found by the darknet name the sidecar records, else by index; each must be a
// convolution with the recorded filters. It returns the indices it annotated.
func ApplyScales(m *quant.Model, sc *Sidecar) ([]int, error) {
	byName := map[string]int{}
	for i, l := range m.Layers {
		byName[l.Name] = i
	}
	var done []int
	for _, sl := range sc.Layers {
		if err := sl.check(); err != nil {
			return nil, fmt.Errorf("apply scales: sidecar layer %d: %w", sl.Index, err)
		}
		i, ok := byName[sl.Name]
		if !ok || sl.Name == "" {
			i = sl.Index
		}
		if err := sl.matches(m, i); err != nil {
			return nil, fmt.Errorf("apply scales: %w", err)
		}
		l := m.Layers[i]
		if l.Quant == nil {
			l.Quant = &quant.LayerQuant{}
		}
		l.Quant.ActBits, l.Quant.ActScale = sl.ActBits, sl.ActScale
		done = append(done, i)
	}
	return done, nil
}

// thresholdLayer derives l's thresholds from its batch norm.
func thresholdLayer(m *quant.Model, l *quant.Layer, sl SidecarLayer) error {
	src, err := inputLevels(m, l)
	if err != nil {
		return err
	}
	if sq := src.Quant; sq.ActBits != sl.InputBits || sq.ActScale != sl.InputScale {
		return fmt.Errorf("reads %s's %d-bit levels of scale %g, the sidecar says %d bits of scale %g", src.Name, sq.ActBits, sq.ActScale, sl.InputBits, sl.InputScale)
	}
	c, q := l.Conv, l.Quant
	alpha := make([]float64, c.Filters)
	if sl.WeightBits == 1 {
		alpha = binarize(c)
	} else {
		for o := range alpha {
			alpha[o] = 1
		}
	}
	reach, err := reaches(c, sl.InputBits)
	if err != nil {
		return err
	}
	q.Thresholds, q.Invert = make([][]int32, c.Filters), make([]bool, c.Filters)
	for o := range q.Thresholds {
		f := channelLevel(m, c, o, alpha[o], float64(sl.InputScale), sl.ActScale, sl.ActBits)
		q.Thresholds[o], q.Invert[o] = f.Thresholds(int(reach[o]))
	}
	c.BN, c.Bias = nil, nil
	return nil
}

// binarize replaces c's weights by their signs (darknet: w > 0 ? +1 : -1) and returns
// each filter's mean |w|, the magnitude darknet's binary=1 multiplies the signs by.
func binarize(c *quant.Conv) []float64 {
	per := len(c.Weights) / c.Filters
	alpha := make([]float64, c.Filters)
	signs := make([]float32, len(c.Weights))
	for o := range alpha {
		var sum float64
		for i, w := range c.Weights[o*per : (o+1)*per] {
			sum += math.Abs(float64(w))
			signs[o*per+i] = -1
			if w > 0 {
				signs[o*per+i] = 1
			}
		}
		alpha[o] = sum / float64(per)
	}
	c.Weights, c.Binary = signs, true
	return alpha
}

// floatLayer folds l's batch norm into its weights and bias (and binarizes bipolar
// weights as darknet computes them: sign times the filter's mean |w|).
func floatLayer(m *quant.Model, l *quant.Layer, sl SidecarLayer) {
	c := l.Conv
	if sl.WeightBits == 1 {
		alpha := binarize(c)
		per := len(c.Weights) / c.Filters
		for i := range c.Weights {
			c.Weights[i] *= float32(alpha[i/per])
		}
		c.Binary = false
	}
	if c.BN == nil {
		return
	}
	per := len(c.Weights) / c.Filters
	w := make([]float32, len(c.Weights))
	bias := make([]float32, c.Filters)
	for o := range bias {
		g := float64(c.BN.Scale[o]) / bnSigma(m, c.BN.Variance[o])
		for i := o * per; i < (o+1)*per; i++ {
			w[i] = float32(float64(c.Weights[i]) * g)
		}
		bias[o] = float32(float64(c.Bias[o]) - g*float64(c.BN.Mean[o]))
	}
	c.Weights, c.Bias, c.BN = w, bias, nil
}

// Check is the result of [CheckFiles].
type Check struct {
	Channels  int // threshold channels compared
	Identical int // same thresholds and invert flag
	Same      int // same levels over the reachable range (includes Identical)
	// Float layers whose weights, bias or quantization came back different (should be
	// none) and threshold layers whose weights changed.
	Changed []string
}

// CheckFiles reads exported files back ([LoadExport]), re-quantizes them and compares
// every quantized layer with orig, the model they were exported from: thresholds channel
// by channel, weights, float layers' parameters (for a FloatLHTan export: those of orig
// with its unit scales).
func CheckFiles(orig *quant.Model, cfgPath, weightsPath string) (*Check, error) {
	back, sc, err := LoadExport(cfgPath, weightsPath)
	if err != nil {
		return nil, fmt.Errorf("check export: %w", err)
	}
	if sc.FloatActivation == FloatLHTan {
		// Compare with the rescaled model the export wrote (same levels and thresholds).
		if orig, err = unitScales(orig); err != nil {
			return nil, fmt.Errorf("check export: %w", err)
		}
	}
	if err := Requantize(back, sc); err != nil {
		return nil, fmt.Errorf("check export: %w", err)
	}
	if len(back.Layers) != len(orig.Layers) {
		return nil, fmt.Errorf("check export: %d layers read back, %d exported", len(back.Layers), len(orig.Layers))
	}
	ck := &Check{}
	for i, l := range orig.Layers {
		b := back.Layers[i]
		if l.Conv == nil || b.Conv == nil {
			continue
		}
		if !slices.Equal(l.Conv.Weights, b.Conv.Weights) {
			ck.Changed = append(ck.Changed, l.Name+" weights")
		}
		q, bq := l.Quant, b.Quant
		if q == nil || len(q.Thresholds) == 0 {
			if (q == nil) != (bq == nil) || (q != nil && !sameFloatQuant(q, bq)) || !slices.Equal(l.Conv.Bias, b.Conv.Bias) {
				ck.Changed = append(ck.Changed, l.Name)
			}
			continue
		}
		if bq == nil || len(bq.Thresholds) != len(q.Thresholds) {
			ck.Changed = append(ck.Changed, l.Name+" thresholds")
			continue
		}
		reach, err := reaches(l.Conv, sc.input(i))
		if err != nil {
			return nil, fmt.Errorf("check export: layer %d (%s): %w", i, l.Name, err)
		}
		for o, t := range q.Thresholds {
			inv := q.Invert != nil && q.Invert[o]
			ck.Channels++
			if slices.Equal(t, bq.Thresholds[o]) && inv == bq.Invert[o] {
				ck.Identical++
			}
			if SameLevels(t, inv, bq.Thresholds[o], bq.Invert[o], reach[o]) {
				ck.Same++
			}
		}
	}
	return ck, nil
}

// input returns the input bits the sidecar records for layer index (0 if none).
func (s *Sidecar) input(index int) int {
	for _, l := range s.Layers {
		if l.Index == index {
			return l.InputBits
		}
	}
	return 0
}

func sameFloatQuant(a, b *quant.LayerQuant) bool {
	return a.WeightBits == b.WeightBits && a.ActBits == b.ActBits && a.ActScale == b.ActScale
}
