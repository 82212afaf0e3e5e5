package train

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/fpgadetector/pynq-agent/quant/dataset"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// Sample is one training image and its boxes relative to the image (darknet labels).
type Sample struct {
	Path  string
	Boxes []Box
	// Weight is how often the loader draws this image relative to others (its
	// source's weight; 0 counts as 1).
	Weight float64
}

// Source is one training dataset and its draw weight.
type Source struct {
	Path   string
	Weight float64 // per-image oversampling factor (1: as often as any other image)
}

// ParseSources reads a comma-separated list of datasets, each PATH or PATH=WEIGHT:
// "coco=3,pseudo" draws every coco image three times as often as a pseudo image.
func ParseSources(spec string) ([]Source, error) {
	var out []Source
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		src := Source{Path: part, Weight: 1}
		if i := strings.LastIndex(part, "="); i >= 0 {
			w, err := strconv.ParseFloat(part[i+1:], 64)
			if err != nil || w < 0 || math.IsInf(w, 0) || math.IsNaN(w) {
				return nil, fmt.Errorf("training data %q: weight %q is not a non-negative number", part, part[i+1:])
			}
			src = Source{Path: strings.TrimSpace(part[:i]), Weight: w}
		}
		if src.Path == "" {
			return nil, fmt.Errorf("training data %q: no dataset path before the weight", part)
		}
		out = append(out, src)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("training data %q: no dataset given", spec)
	}
	return out, nil
}

// LoadSources loads every source (see [LoadSamples]) with its weight.
func LoadSources(srcs []Source, classes int, names []string) ([]Sample, error) {
	var out []Sample
	for _, src := range srcs {
		s, _, err := LoadSamples(src.Path, classes, names)
		if err != nil {
			return nil, err
		}
		for i := range s {
			s[i].Weight = src.Weight
		}
		out = append(out, s...)
	}
	return out, nil
}

// LoadSamples opens a darknet dataset (a directory of images with same-name .txt
// labels, or a list file; see quant/dataset) for training. With names (the model's
// classes), labels are matched by class name and other classes are dropped (a COCO
// or VOC dataset trains a chair model); without, a label's class is its index in the
// dataset's names file, and a dataset without one names its classes 0 .. classes-1.
func LoadSamples(path string, classes int, names []string) ([]Sample, []string, error) {
	d, err := dataset.Open(path, dataset.Options{})
	if errors.Is(err, dataset.ErrNoNames) {
		fallback := names
		if fallback == nil {
			fallback = make([]string, classes)
			for i := range fallback {
				fallback[i] = strconv.Itoa(i)
			}
		}
		d, err = dataset.Open(path, dataset.Options{Names: fallback})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("training data: %w", err)
	}
	if names == nil {
		names = d.Names
	} else if !slices.ContainsFunc(names, func(n string) bool { return slices.Contains(d.Names, n) }) {
		return nil, nil, fmt.Errorf("training data %s: none of the model's classes %v is among its classes", path, names)
	}
	var out []Sample
	for _, im := range d.Images {
		if im.Path == "" || im.Width <= 0 || im.Height <= 0 {
			continue
		}
		s := Sample{Path: im.Path}
		for _, o := range im.Objects {
			c := slices.Index(names, o.Class)
			if c < 0 {
				continue
			}
			w, h := float64(im.Width), float64(im.Height)
			b := o.Box // VOC 1-based corners: undo dataset.Label.PixelBox
			s.Boxes = append(s.Boxes, Box{
				X: float32((b[0] + b[2] - 2) / 2 / w), Y: float32((b[1] + b[3] - 2) / 2 / h),
				W: float32((b[2] - b[0]) / w), H: float32((b[3] - b[1]) / h), Class: c,
			})
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("training data %s: no images (darknet datasets hold images with same-name .txt labels)", path)
	}
	return out, d.Names, nil
}

// Augment holds darknet's detection augmentation parameters (load_data_detection).
type Augment struct {
	Jitter, Hue, Saturation, Exposure float64
	Flip                              bool
}

// augment places im into a w x h canvas as darknet's load_data_detection does: random
// aspect-ratio jitter, scale .25..2 of the canvas, random offset, grey (.5) fill; HSV
// distortion; a random horizontal flip; and moves the boxes with it (boxes smaller
// than .001 are dropped).
func augment(im *imageio.Image, boxes []Box, w, h int, a Augment, rng *rand.Rand, dst []float32) []Box {
	uni := func(lo, hi float64) float64 {
		if lo > hi {
			lo, hi = hi, lo
		}
		return lo + rng.Float64()*(hi-lo)
	}
	dw, dh := a.Jitter*float64(im.W), a.Jitter*float64(im.H)
	ar := (float64(im.W) + uni(-dw, dw)) / (float64(im.H) + uni(-dh, dh))
	scale := uni(.25, 2)
	var nw, nh float64
	if ar < 1 {
		nh = scale * float64(h)
		nw = nh * ar
	} else {
		nw = scale * float64(w)
		nh = nw / ar
	}
	dx, dy := uni(0, float64(w)-nw), uni(0, float64(h)-nh)
	for i := range dst[:3*w*h] {
		dst[i] = .5
	}
	place(im, int(nw), int(nh), int(dx), int(dy), dst, w, h)
	dhue := uni(-a.Hue, a.Hue)
	dsat, dexp := randScale(rng, a.Saturation), randScale(rng, a.Exposure)
	distort(dst, w, h, dhue, dsat, dexp)
	flip := rng.IntN(2) == 1 && a.Flip
	if flip {
		for c := 0; c < 3; c++ {
			for y := 0; y < h; y++ {
				slices.Reverse(dst[(c*h+y)*w : (c*h+y+1)*w])
			}
		}
	}
	boxes = slices.Clone(boxes)
	rng.Shuffle(len(boxes), func(i, j int) { boxes[i], boxes[j] = boxes[j], boxes[i] })
	sx, sy := nw/float64(w), nh/float64(h)
	ox, oy := dx/float64(w), dy/float64(h)
	var out []Box
	for _, b := range boxes {
		l := float64(b.X-b.W/2)*sx + ox
		r := float64(b.X+b.W/2)*sx + ox
		t := float64(b.Y-b.H/2)*sy + oy
		bt := float64(b.Y+b.H/2)*sy + oy
		if flip {
			l, r = 1-r, 1-l
		}
		l, r, t, bt = clamp01(l), clamp01(r), clamp01(t), clamp01(bt)
		bw, bh := clamp01(r-l), clamp01(bt-t)
		if bw < .001 || bh < .001 {
			continue
		}
		out = append(out, Box{X: float32((l + r) / 2), Y: float32((t + bt) / 2), W: float32(bw), H: float32(bh), Class: b.Class})
	}
	return out
}

func clamp01(v float64) float64 { return min(max(v, 0), 1) }

// randScale is darknet's rand_scale: a factor in [1, s] or its inverse, equally likely.
func randScale(rng *rand.Rand, s float64) float64 {
	lo, hi := 1.0, s
	if lo > hi {
		lo, hi = hi, lo
	}
	v := lo + rng.Float64()*(hi-lo)
	if rng.IntN(2) == 1 {
		return v
	}
	return 1 / v
}

// place draws im resized (bilinear, edge-clamped) to nw x nh at (dx, dy) of the canvas.
func place(im *imageio.Image, nw, nh, dx, dy int, dst []float32, w, h int) {
	if nw <= 0 || nh <= 0 {
		return
	}
	for c := 0; c < 3; c++ {
		sc := min(c, im.C-1)
		for y := max(0, -dy); y < nh && y+dy < h; y++ {
			ry := float64(y) / float64(nh) * float64(im.H)
			iy := int(math.Floor(ry))
			fy := float32(ry - float64(iy))
			y0, y1 := min(max(iy, 0), im.H-1), min(max(iy+1, 0), im.H-1)
			r0 := im.Data[(sc*im.H+y0)*im.W:]
			r1 := im.Data[(sc*im.H+y1)*im.W:]
			row := dst[(c*h+y+dy)*w:]
			for x := max(0, -dx); x < nw && x+dx < w; x++ {
				rx := float64(x) / float64(nw) * float64(im.W)
				ix := int(math.Floor(rx))
				fx := float32(rx - float64(ix))
				x0, x1 := min(max(ix, 0), im.W-1), min(max(ix+1, 0), im.W-1)
				row[x+dx] = (1-fy)*((1-fx)*r0[x0]+fx*r0[x1]) + fy*((1-fx)*r1[x0]+fx*r1[x1])
			}
		}
	}
}

// distort is darknet's distort_image: in HSV, hue += dhue (wrapping), saturation and
// value scaled; back to RGB, clamped to [0,1].
func distort(d []float32, w, h int, dhue, dsat, dexp float64) {
	if dhue == 0 && dsat == 1 && dexp == 1 {
		return
	}
	n := w * h
	for i := 0; i < n; i++ {
		r, g, b := float64(d[i]), float64(d[n+i]), float64(d[2*n+i])
		hh, s, v := rgbToHSV(r, g, b)
		hh += dhue
		if hh > 1 {
			hh--
		} else if hh < 0 {
			hh++
		}
		r, g, b = hsvToRGB(hh, s*dsat, v*dexp)
		d[i], d[n+i], d[2*n+i] = float32(clamp01(r)), float32(clamp01(g)), float32(clamp01(b))
	}
}

// rgbToHSV uses darknet's conventions: hue in [0,1), saturation and value in [0,1].
func rgbToHSV(r, g, b float64) (h, s, v float64) {
	mx, mn := max(r, g, b), min(r, g, b)
	delta := mx - mn
	v = mx
	if mx == 0 || delta == 0 {
		return 0, 0, v
	}
	s = delta / mx
	switch {
	case r == mx:
		h = (g - b) / delta
	case g == mx:
		h = 2 + (b-r)/delta
	default:
		h = 4 + (r-g)/delta
	}
	if h < 0 {
		h += 6
	}
	return h / 6, s, v
}

func hsvToRGB(h, s, v float64) (r, g, b float64) {
	if s == 0 {
		return v, v, v
	}
	h *= 6
	i := math.Floor(h)
	f := h - i
	p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	switch int(i) % 6 {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	}
	return v, p, q
}

// miniBatch is one forward pass's input.
type miniBatch struct {
	index  uint64 // mini-batch number since the start of training
	data   []float32
	truths [][]Box
	err    error
}

// loader prepares mini-batches in a goroutine ahead of the compute. Mini-batch k draws
// its images (with replacement, as darknet's get_random_paths) and augmentation from a
// generator seeded by (seed, k): the same k gives the same batch, which makes a resumed
// run repeat the uninterrupted one.
type loader struct {
	samples []Sample
	cum     []float64 // cumulative sample weights, for weighted draws
	w, h    int
	batch   int
	aug     Augment
	seed    uint64

	mu    sync.Mutex
	cache map[string]*imageio.Image
	bytes int
}

const maxCacheBytes = 1 << 30

func (ld *loader) image(path string) (*imageio.Image, error) {
	ld.mu.Lock()
	im := ld.cache[path]
	ld.mu.Unlock()
	if im != nil {
		return im, nil
	}
	im, err := imageio.Load(path)
	if err != nil {
		return nil, err
	}
	ld.mu.Lock()
	if ld.bytes+4*len(im.Data) <= maxCacheBytes {
		ld.cache[path] = im
		ld.bytes += 4 * len(im.Data)
	}
	ld.mu.Unlock()
	return im, nil
}

func (ld *loader) make(k uint64) miniBatch {
	rng := rand.New(rand.NewPCG(ld.seed, k))
	mb := miniBatch{index: k, data: make([]float32, ld.batch*3*ld.w*ld.h), truths: make([][]Box, ld.batch)}
	picks := make([]int, ld.batch)
	seeds := make([]uint64, ld.batch)
	for b := range picks {
		picks[b] = ld.pick(rng)
		seeds[b] = rng.Uint64()
	}
	var wg sync.WaitGroup
	errs := make([]error, ld.batch)
	for b := range picks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := ld.samples[picks[b]]
			im, err := ld.image(s.Path)
			if err != nil {
				errs[b] = fmt.Errorf("training image: %w", err)
				return
			}
			r := rand.New(rand.NewPCG(seeds[b], k))
			mb.truths[b] = augment(im, s.Boxes, ld.w, ld.h, ld.aug, r, mb.data[b*3*ld.w*ld.h:])
		}()
	}
	wg.Wait()
	mb.err = errors.Join(errs...)
	return mb
}

// pick draws a sample index: uniformly, or by the samples' weights when they differ.
func (ld *loader) pick(rng *rand.Rand) int {
	if ld.cum == nil {
		return rng.IntN(len(ld.samples))
	}
	u := rng.Float64() * ld.cum[len(ld.cum)-1]
	// The first sample whose cumulative weight exceeds u: zero-weight ones never.
	i := sort.Search(len(ld.cum), func(i int) bool { return ld.cum[i] > u })
	return min(i, len(ld.samples)-1)
}

// weighCumulative sets the cumulative weights when some sample is weighted.
func (ld *loader) weighCumulative() error {
	uniform := true
	for _, s := range ld.samples {
		uniform = uniform && (s.Weight == 0 || s.Weight == 1)
	}
	if uniform {
		return nil
	}
	ld.cum = make([]float64, len(ld.samples))
	total := 0.0
	for i, s := range ld.samples {
		total += s.Weight
		ld.cum[i] = total
	}
	if total <= 0 {
		return errors.New("training data: every dataset has weight 0")
	}
	return nil
}

// run sends mini-batches first, first+1, ... until done is closed.
func (ld *loader) run(first uint64, out chan<- miniBatch, done <-chan struct{}) {
	defer close(out)
	for k := first; ; k++ {
		mb := ld.make(k)
		select {
		case out <- mb:
		case <-done:
			return
		}
	}
}
