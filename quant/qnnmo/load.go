package qnnmo

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// FirstActScale is the activation scale of the CPU's first layer: its output is clipped
// to [0, 4] and quantized to 3 bits as round(x/4*7), so level k means 4k/7.
const FirstActScale = float32(4) / 7

// LoadDir imports a QNN-MO parameter directory (e.g. QNN-MO-PYNQ's qnn/params): the
// darknet cfg (*.cfg), the layers json (*-layers.json), the first and last layers'
// float weights (<network>-conv<N>-W.npy, HWIO, and -bias.npy) and the binparam
// directory the json names.
//
// The IR it returns, in darknet order and orientation:
//   - the first convolution: float weights and bias, ReLU, Quant{ActBits 3, ActScale 4/7}
//     (output level = round-half-even(clip(x, 0, 4)/4*7), see [FirstLayer]);
//   - the hidden (binary=1) convolutions: weights +1/-1 (OIHW), no bias,
//     Quant{WeightBits 1, ActBits 3, ActScale 1, Thresholds, Invert}: with acc the sum of
//     weight times input level (input levels, not scaled values), the output level is
//     count(acc >= T_t), or 7 minus that when Invert is set. ActScale is 1 because the
//     original pipeline feeds the raw levels of the last hidden layer to the last layer;
//   - the max pools (darknet semantics; the 2/1 pool pads bottom and right);
//   - the last convolution: float weights and bias, linear;
//   - the region head (anchors, classes, softmax from the cfg).
func LoadDir(dir string) (*quant.Model, error) { return loadFS(osFS{}, dir) }

// LoadFS is [LoadDir] on the directory dir of fsys (e.g. an embedded parameter
// directory: LoadFS(embedFS, "demo")).
func LoadFS(fsys fs.FS, dir string) (*quant.Model, error) {
	if !fs.ValidPath(dir) {
		return nil, fmt.Errorf("load qnn model: %q is not a valid fs path (slash-separated, no leading /)", dir)
	}
	return loadFS(fsys, dir)
}

// osFS opens operating-system paths as they are (fs.FS names would have to be
// relative), so that LoadDir's errors name the files the user gave.
type osFS struct{}

func (osFS) Open(name string) (fs.File, error)     { return os.Open(name) }
func (osFS) ReadFile(name string) ([]byte, error)  { return os.ReadFile(name) }
func (osFS) Glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }

func loadFS(fsys fs.FS, dir string) (*quant.Model, error) {
	cfgPath, err := findOne(fsys, dir, "*.cfg")
	if err != nil {
		return nil, err
	}
	jsonPath, err := findOne(fsys, dir, "*-layers.json")
	if err != nil {
		return nil, err
	}
	lj, err := readLayersJSON(fsys, jsonPath)
	if err != nil {
		return nil, err
	}
	cfgData, err := fs.ReadFile(fsys, cfgPath)
	if err != nil {
		return nil, err
	}
	sections, err := parseCfg(cfgData)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", cfgPath, err)
	}
	m, err := modelFromCfg(sections)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	m.Name = lj.Network
	if err := loadFloatLayers(fsys, m, dir, lj.Network); err != nil {
		return nil, err
	}
	if err := m.InferShapes(); err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	if err := checkLayersJSON(m, lj); err != nil {
		return nil, fmt.Errorf("%s disagrees with %s: %w", jsonPath, cfgPath, err)
	}
	if lj.BinparamSkip != BinparamSkip {
		return nil, fmt.Errorf("%s: binparam_skip %d (only %d is supported)", jsonPath, lj.BinparamSkip, BinparamSkip)
	}
	if err := readBinparamsFS(fsys, m, path.Join(dir, lj.Binparam), offload.W1A3); err != nil {
		return nil, err
	}
	return m, nil
}

func findOne(fsys fs.FS, dir, pattern string) (string, error) {
	matches, err := fs.Glob(fsys, path.Join(dir, pattern))
	if err != nil {
		return "", err
	}
	if len(matches) != 1 {
		return "", fmt.Errorf("%s: %d files match %s, want exactly 1 (is this a QNN-MO parameter directory?)", dir, len(matches), pattern)
	}
	return matches[0], nil
}

type layersJSON struct {
	Network      string      `json:"network"`
	Binparam     string      `json:"binparam"`
	BinparamSkip int         `json:"binparam_skip"`
	LayerSkip    int         `json:"layer_skip"`
	Layers       []jsonLayer `json:"layers"`
}

type jsonLayer struct {
	Name         string `json:"name"`
	Func         string `json:"func"`
	InputBits    int    `json:"input_bits"`
	OutputBits   int    `json:"output_bits"`
	WeightBits   int    `json:"weight_bits"`
	KernelShape  int    `json:"kernel_shape"`
	KernelStride int    `json:"kernel_stride"`
	Input        []int  `json:"input"`
	Output       []int  `json:"output"`
	Padding      int    `json:"padding"`
}

func readLayersJSON(fsys fs.FS, path string) (*layersJSON, error) {
	data, err := fs.ReadFile(fsys, path)
	if err != nil {
		return nil, err
	}
	var lj layersJSON
	if err := json.Unmarshal(data, &lj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if lj.Network == "" || lj.Binparam == "" || len(lj.Layers) == 0 {
		return nil, fmt.Errorf("%s: missing network, binparam or layers (not a QNN-MO layers json)", path)
	}
	return &lj, nil
}

// checkLayersJSON compares the engine layers the json describes with the IR's shapes.
func checkLayersJSON(m *quant.Model, lj *layersJSON) error {
	byName := map[string]*quant.Layer{}
	for _, l := range m.Layers {
		byName[l.Name] = l
	}
	for _, jl := range lj.Layers {
		if jl.Func == "none" {
			continue
		}
		l := byName[jl.Name]
		if l == nil {
			return fmt.Errorf("layer %q is not in the cfg", jl.Name)
		}
		if len(jl.Input) != 3 || len(jl.Output) != 3 {
			return fmt.Errorf("layer %q: input and output must be [C, H, W]", jl.Name)
		}
		out := quant.Shape{C: jl.Output[0], H: jl.Output[1], W: jl.Output[2]}
		if out != l.Out || jl.Input[0] != l.In.C {
			return fmt.Errorf("layer %q: json %v -> %v, cfg %v -> %v", jl.Name, jl.Input, jl.Output, l.In, l.Out)
		}
		switch jl.Func {
		case "conv_layer":
			c := l.Conv
			if l.Kind != quant.KindConv || !c.Binary || jl.KernelShape != c.Size || jl.KernelStride != c.Stride || jl.Padding != c.Pad || jl.Input[1] != l.In.H {
				return fmt.Errorf("layer %q: json kernel %d/%d pad %d on %v, cfg %s", jl.Name, jl.KernelShape, jl.KernelStride, jl.Padding, jl.Input, l.Kind)
			}
			if jl.WeightBits != 1 || jl.OutputBits != 3 || jl.InputBits != 3 {
				return fmt.Errorf("layer %q: W%dA%d->%d, the engine computes W1A3", jl.Name, jl.WeightBits, jl.InputBits, jl.OutputBits)
			}
		case "maxpool_layer":
			if l.Kind != quant.KindMaxPool || jl.KernelShape != l.Pool.Size || jl.KernelStride != l.Pool.Stride {
				return fmt.Errorf("layer %q: json pool %d/%d, cfg %s", jl.Name, jl.KernelShape, jl.KernelStride, l.Kind)
			}
		default:
			return fmt.Errorf("layer %q: function %q is not supported", jl.Name, jl.Func)
		}
	}
	return nil
}

type cfgSection struct {
	name string
	line int
	kv   map[string]string
}

// parseCfg reads a darknet cfg into sections (errors name the line).
func parseCfg(data []byte) ([]cfgSection, error) {
	var out []cfgSection
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("%d: unterminated section header %q", n, line)
			}
			out = append(out, cfgSection{name: strings.TrimSpace(line[1 : len(line)-1]), line: n, kv: map[string]string{}})
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || len(out) == 0 {
				return nil, fmt.Errorf("%d: %q is not key=value inside a section", n, line)
			}
			out[len(out)-1].kv[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out, sc.Err()
}

func (s cfgSection) int(key string, def int) (int, error) {
	v, ok := s.kv[key]
	if !ok {
		return def, nil
	}
	i, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("line %d [%s]: %s=%q is not an integer", s.line, s.name, key, v)
	}
	return i, nil
}

func (s cfgSection) floats(key string) ([]float32, error) {
	var out []float32
	for _, f := range strings.Split(s.kv[key], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 32)
		if err != nil {
			return nil, fmt.Errorf("line %d [%s]: %s entry %q is not a number", s.line, s.name, key, f)
		}
		out = append(out, float32(v))
	}
	return out, nil
}

// maxCfgValue bounds the integers of a cfg (sizes, filters, classes) so that a broken
// file cannot make the importer allocate without limit.
const maxCfgValue = 1 << 16

// modelFromCfg builds the layer list of a Tinier-YOLO style cfg: convolutions named
// conv0, conv1, ..., each max pool named after the convolution before it (pool1 follows
// conv1), and the region head.
func modelFromCfg(sections []cfgSection) (*quant.Model, error) {
	if len(sections) == 0 || (sections[0].name != "net" && sections[0].name != "network") {
		return nil, fmt.Errorf("the cfg does not start with [net]")
	}
	net := sections[0]
	m := &quant.Model{Dialect: quant.DialectPjreddie, BNEpsilon: 1e-6}
	var err error
	ints := func(s cfgSection, key string, def int) int {
		v, e := s.int(key, def)
		if e == nil && (v < 0 || v > maxCfgValue) {
			e = fmt.Errorf("line %d [%s]: %s=%d is out of range", s.line, s.name, key, v)
		}
		if e != nil && err == nil {
			err = e
		}
		return v
	}
	m.Input = quant.Shape{C: ints(net, "channels", 3), H: ints(net, "height", 0), W: ints(net, "width", 0)}
	convs := 0
	for _, s := range sections[1:] {
		if err != nil {
			return nil, err
		}
		idx := len(m.Layers)
		l := &quant.Layer{Inputs: []int{idx - 1}}
		switch s.name {
		case "convolutional", "conv":
			size := ints(s, "size", 1)
			c := &quant.Conv{Filters: ints(s, "filters", 1), Size: size, Stride: ints(s, "stride", 1), Groups: 1,
				Activation: quant.Activation(s.kv["activation"]), Binary: s.kv["binary"] == "1", XNOR: s.kv["xnor"] == "1"}
			if c.Activation == "" {
				c.Activation = quant.ActLogistic
			}
			if ints(s, "pad", 0) == 1 {
				c.Pad = size / 2
			} else {
				c.Pad = ints(s, "padding", 0)
			}
			l.Kind, l.Conv, l.Name = quant.KindConv, c, fmt.Sprintf("conv%d", convs)
			if c.Binary {
				q := &quant.LayerQuant{WeightBits: 1, ActBits: 3, ActScale: 1,
					Thresholds: make([][]int32, c.Filters), Invert: make([]bool, c.Filters)}
				l.Quant = q
			}
			convs++
		case "maxpool":
			stride := ints(s, "stride", 1)
			size := ints(s, "size", stride)
			l.Kind, l.Name = quant.KindMaxPool, fmt.Sprintf("pool%d", convs-1)
			l.Pool = &quant.Pool{Size: size, Stride: stride, Pad: ints(s, "padding", size-1)}
		case "region":
			anchors, e := s.floats("anchors")
			if e != nil {
				return nil, e
			}
			l.Kind, l.Name = quant.KindRegion, "region"
			l.Head = &quant.Head{Classes: ints(s, "classes", 20), Coords: ints(s, "coords", 4), Num: ints(s, "num", 1),
				Anchors: anchors, Softmax: s.kv["softmax"] == "1"}
		default:
			return nil, fmt.Errorf("line %d: section [%s] is not part of a QNN-MO model", s.line, s.name)
		}
		m.Layers = append(m.Layers, l)
	}
	return m, err
}

// loadFloatLayers reads the .npy weights and biases of the float (non-binary)
// convolutions: <network>-conv<N>-W.npy holds HWIO weights (kernel rows, kernel
// columns, input channels, output channels) as QNN-MO's Python applies them.
func loadFloatLayers(fsys fs.FS, m *quant.Model, dir, network string) error {
	in := m.Input
	for _, l := range m.Layers {
		if l.Kind != quant.KindConv || l.Conv.Binary {
			if l.Kind == quant.KindConv {
				in.C = l.Conv.Filters
			}
			continue
		}
		c := l.Conv
		base := path.Join(dir, network+"-"+l.Name)
		w, err := readNpyFS(fsys, base+"-W.npy")
		if err != nil {
			return fmt.Errorf("float layer %s: %w", l.Name, err)
		}
		b, err := readNpyFS(fsys, base+"-bias.npy")
		if err != nil {
			return fmt.Errorf("float layer %s: %w", l.Name, err)
		}
		cin := in.C
		if want := []int{c.Size, c.Size, cin, c.Filters}; !equalInts(w.Shape, want) {
			return fmt.Errorf("%s-W.npy: shape %v, the cfg needs %v (HWIO)", base, w.Shape, want)
		}
		if !equalInts(b.Shape, []int{c.Filters}) {
			return fmt.Errorf("%s-bias.npy: shape %v, the cfg needs [%d]", base, b.Shape, c.Filters)
		}
		c.Weights = make([]float32, len(w.Data))
		k := c.Size
		for ky := 0; ky < k; ky++ {
			for kx := 0; kx < k; kx++ {
				for ch := 0; ch < cin; ch++ {
					for o := 0; o < c.Filters; o++ {
						c.Weights[((o*cin+ch)*k+ky)*k+kx] = w.Data[((ky*k+kx)*cin+ch)*c.Filters+o]
					}
				}
			}
		}
		c.Bias = b.Data
		if isFirstFloat(m, l) {
			l.Quant = &quant.LayerQuant{ActBits: 3, ActScale: FirstActScale}
		}
		in.C = c.Filters
	}
	return nil
}

// isFirstFloat reports whether l is a float convolution that feeds the engine.
func isFirstFloat(m *quant.Model, l *quant.Layer) bool {
	for _, x := range m.Layers {
		if x == l {
			return true
		}
		if x.Kind == quant.KindConv && x.Conv.Binary {
			return false
		}
	}
	return false
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// readNpyFS is [ReadNpyFile] on fsys.
func readNpyFS(fsys fs.FS, name string) (*Array, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	a, err := ParseNpy(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return a, nil
}
