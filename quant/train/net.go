package train

import (
	"fmt"
	"math"
	"sync"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
)

// Net trains a model in place: its convolution weights, biases and batch-norm
// parameters are the model's own slices, so writing the model (quant/darknet
// WriteWeights) saves the trained state. It runs mini-batches of Batch images: every
// layer's output is kept for the backward pass, and deltas follow darknet's sign
// convention (delta = -dLoss/dOutput), so the updates are added to the parameters.
type Net struct {
	Model   *quant.Model
	Batch   int
	Threads int
	Region  RegionParams
	// Seen is the number of images trained on (darknet's net->seen); the region loss's
	// prior-matching term runs while Seen < 12800.
	Seen uint64

	truths  [][]Box
	layers  []trainLayer
	outs    [][]float32 // per layer, Batch x Out.Size()
	deltas  [][]float32
	workers []*floatengine.Workers
	gemmThr int
	// LearnClip lets quantized activations learn their scale (PACT); see qat.go.
	LearnClip bool
	// clipInit is the calib method (calib.MSE, Percentile or MinMax; "" MSE) that
	// calibrates an unset activation scale on the first batch; Run checks it.
	clipInit string
	// Loss is darknet's cost of the last forward pass: the sum of squared region deltas.
	Loss float64
	// Stats of the last forward pass's region layer.
	Stats RegionStats

	// scales are the per-layer learning-rate factors (SetLayerRates); a layer at 0 is
	// frozen. firstTrained is the lowest layer the backward pass reaches.
	scales       []float64
	firstTrained int
}

// SetLayerRates scales the learning rate per layer; layers at scale 0 are frozen
// (see [LayerRate]).
func (n *Net) SetLayerRates(rates []LayerRate) error {
	s, err := layerScales(rates, len(n.layers))
	if err != nil {
		return err
	}
	n.scales, n.firstTrained = s, len(n.layers)-1
	for i, l := range n.layers {
		if _, ok := l.(*convLayer); ok && s[i] > 0 {
			n.firstTrained = i
			break
		}
	}
	return nil
}

// FixBatchNorm makes every batch-normalized convolution train with its rolling
// statistics fixed (as in inference) instead of batch statistics: fine-tuning a
// trained network on small batches of differently distributed images then starts from
// exactly what the network computed, and only scale, bias and weights move.
func (n *Net) FixBatchNorm() {
	for _, l := range n.layers {
		if c, ok := l.(*convLayer); ok {
			c.fixedBN = true
		}
	}
}

// frozen says whether layer i trains at all.
func (n *Net) frozen(i int) bool { return n.scales != nil && n.scales[i] == 0 }

type trainLayer interface {
	forward(n *Net, in, out []float32, train bool)
	// backward adds the input's delta into inDelta (nil for the network input) and
	// accumulates parameter updates.
	backward(n *Net, in, out, delta, inDelta []float32)
}

// NewNet prepares m (with weights) for training with mini-batches of batch images on
// threads goroutines (0: GOMAXPROCS). Supported layers: convolutional (groups 1, with or
// without batch norm; linear, leaky, relu, logistic, lhtan), maxpool and a final region head.
func NewNet(m *quant.Model, batch, threads int, rp RegionParams) (*Net, error) {
	if err := m.InferShapes(); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if batch < 1 {
		return nil, fmt.Errorf("train: batch %d must be positive", batch)
	}
	w := floatengine.NewWorkers(threads)
	n := &Net{Model: m, Batch: batch, Threads: w.Threads(), Region: rp}
	if rp.MaxBoxes <= 0 {
		n.Region.MaxBoxes = 30
	}
	for i, l := range m.Layers {
		if len(l.Inputs) != 1 || l.Inputs[0] != i-1 {
			return nil, fmt.Errorf("train: layer %d (%s) reads layer %v: only chains are supported", i, l.Name, l.Inputs)
		}
		tl, err := newTrainLayer(m, l, i == len(m.Layers)-1)
		if err != nil {
			return nil, fmt.Errorf("train: layer %d (%s): %w", i, l.Name, err)
		}
		n.layers = append(n.layers, tl)
		n.outs = append(n.outs, make([]float32, batch*l.Out.Size()))
		n.deltas = append(n.deltas, make([]float32, batch*l.Out.Size()))
	}
	if len(m.Layers) == 0 || m.Layers[len(m.Layers)-1].Kind != quant.KindRegion {
		return nil, fmt.Errorf("train: the last layer must be a [region] head")
	}
	n.setImageTasks(1)
	return n, nil
}

// setImageTasks splits the threads into tasks goroutines over the batch's images, each
// running its GEMMs on threads/tasks goroutines. One image at a time with parallel
// GEMMs (the default, tasks = 1) measured faster on 2 cores than one image per core
// (BenchmarkParallelism: 5.0 vs 4.4 images/s, medians of 5 alternating runs; the
// per-image buffers of two images compete for the caches) and uses less memory; it
// also makes the trained weights independent of the thread count.
func (n *Net) setImageTasks(tasks int) {
	tasks = max(1, min(tasks, n.Batch))
	n.gemmThr = max(1, n.Threads/tasks)
	n.workers = n.workers[:0]
	for range tasks {
		n.workers = append(n.workers, floatengine.NewWorkers(n.gemmThr))
	}
}

func newTrainLayer(m *quant.Model, l *quant.Layer, last bool) (trainLayer, error) {
	switch l.Kind {
	case quant.KindConv:
		return newConvLayer(m, l)
	case quant.KindMaxPool:
		return &poolLayer{l: l}, nil
	case quant.KindRegion:
		if !last {
			return nil, fmt.Errorf("the region head must be the last layer")
		}
		if !l.Head.Softmax {
			return nil, fmt.Errorf("region without softmax is not supported")
		}
		return &regionLayer{l: l}, nil
	case quant.KindDropout:
		return nil, fmt.Errorf("dropout is not supported")
	}
	return nil, fmt.Errorf("layer kind %s is not supported for training", l.Kind)
}

// Output returns layer i's output of the last forward pass (Batch images).
func (n *Net) Output(i int) []float32 { return n.outs[i] }

// Forward runs the mini-batch input (Batch images, each Model.Input) through the
// network. With train set, batch norm uses batch statistics (and updates the rolling
// ones) and the region layer computes its deltas against truths (Batch x MaxBoxes
// boxes; a box with X == 0 ends an image's list, as in darknet).
func (n *Net) Forward(input []float32, truths [][]Box, train bool) {
	in := input
	n.truths = truths
	for i, l := range n.layers {
		// A frozen convolution keeps its rolling batch-norm statistics: it computes
		// what it computed before training.
		_, conv := l.(*convLayer)
		l.forward(n, in, n.outs[i], train && !(conv && n.frozen(i)))
		in = n.outs[i]
	}
}

// Backward propagates the region deltas of the last training Forward back to the
// first layer (or the lowest layer that is not frozen), accumulating parameter
// updates.
func (n *Net) Backward(input []float32) {
	for i := range n.deltas[:len(n.deltas)-1] {
		clear(n.deltas[i])
	}
	for i := len(n.layers) - 1; i >= n.firstTrained; i-- {
		in := input
		var inDelta []float32
		if i > 0 {
			in, inDelta = n.outs[i-1], n.deltas[i-1]
		}
		if i == n.firstTrained {
			inDelta = nil
		}
		n.layers[i].backward(n, in, n.outs[i], n.deltas[i], inDelta)
	}
}

// Update applies darknet's SGD step (update_convolutional_layer) to every convolution
// with rate lr for a full batch of batch images: w += lr/batch * (u - decay*batch*w),
// then u *= momentum, where u accumulates the deltas (and holds the momentum).
func (n *Net) Update(lr, momentum, decay float64, batch int) {
	for i, l := range n.layers {
		c, ok := l.(*convLayer)
		if !ok || n.frozen(i) {
			continue
		}
		r := lr
		if n.scales != nil {
			r *= n.scales[i]
		}
		c.update(float32(r/float64(batch)), float32(momentum), float32(decay*float64(batch)), n.LearnClip)
	}
}

// parallelImages runs f for every image of the batch on the workers; worker is the
// index of the goroutine (for per-worker buffers).
func (n *Net) parallelImages(f func(worker, b int)) {
	tasks := len(n.workers)
	if tasks <= 1 {
		for b := 0; b < n.Batch; b++ {
			f(0, b)
		}
		return
	}
	var wg sync.WaitGroup
	for t := 0; t < tasks; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := t; b < n.Batch; b += tasks {
				f(t, b)
			}
		}()
	}
	wg.Wait()
}

// parallelRange splits [0, count) over the threads.
func (n *Net) parallelRange(count int, f func(lo, hi int)) {
	tasks := min(n.Threads, count)
	if tasks <= 1 {
		f(0, count)
		return
	}
	per := (count + tasks - 1) / tasks
	var wg sync.WaitGroup
	for lo := 0; lo < count; lo += per {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, min(lo+per, count))
		}()
	}
	wg.Wait()
}

// activateForward applies a darknet activation in place.
func activateForward(x []float32, a quant.Activation) {
	switch a {
	case quant.ActLinear:
	case quant.ActLeaky:
		for i, v := range x {
			if v < 0 {
				x[i] = .1 * v
			}
		}
	case quant.ActReLU:
		for i, v := range x {
			if v < 0 {
				x[i] = 0
			}
		}
	case quant.ActLogistic:
		for i, v := range x {
			x[i] = float32(1 / (1 + math.Exp(-float64(v))))
		}
	case quant.ActLHTan: // darknet's lhtan_activate: slope .001 outside [0, 1]
		for i, v := range x {
			if v < 0 {
				x[i] = .001 * v
			} else if v > 1 {
				x[i] = .001*(v-1) + 1
			}
		}
	}
}

// activateBackward multiplies delta by the activation's gradient, read from the
// activated output as darknet's gradient_array does.
func activateBackward(y, delta []float32, a quant.Activation) {
	switch a {
	case quant.ActLeaky:
		for i, v := range y {
			if v <= 0 {
				delta[i] *= .1
			}
		}
	case quant.ActReLU:
		for i, v := range y {
			if v <= 0 {
				delta[i] = 0
			}
		}
	case quant.ActLogistic:
		for i, v := range y {
			delta[i] *= (1 - v) * v
		}
	case quant.ActLHTan: // lhtan_gradient
		for i, v := range y {
			if v <= 0 || v >= 1 {
				delta[i] *= .001
			}
		}
	}
}

func supportedActivation(a quant.Activation) bool {
	switch a {
	case quant.ActLinear, quant.ActLeaky, quant.ActReLU, quant.ActLogistic, quant.ActLHTan:
		return true
	}
	return false
}
