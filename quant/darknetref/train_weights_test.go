//go:build darknet && cgo

package darknetref

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
	"github.com/fpgadetector/pynq-agent/quant/darknet"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
	"github.com/fpgadetector/pynq-agent/quant/train"
)

const trainedCfg = `[net]
batch=2
width=32
height=32
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=1

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=relu

[convolutional]
size=1
stride=1
pad=1
filters=14
activation=linear

[region]
anchors=1,1,2.5,2.5
bias_match=1
classes=2
coords=4
num=2
softmax=1
`

// TestTrainedWeightsLoadInDarknet trains a few steps with quant/train, writes the
// weights, and checks that libdarknet loads them and computes the same region output
// as the float engine (so BN rolling statistics, header and layout are darknet's).
func TestTrainedWeightsLoadInDarknet(t *testing.T) {
	if _, err := os.Stat("/usr/lib/darknet/libdarknet.so"); err != nil {
		t.Skip("Debian darknet not installed")
	}
	m, err := darknet.ParseCfg(strings.NewReader(trainedCfg), "trained.cfg", darknet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	train.InitWeights(m, 1)
	n, err := train.NewNet(m, 2, 1, train.DefaultConfig().Region)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	in := make([]float32, 2*m.Input.Size())
	for i := range in {
		in[i] = rng.Float32()
	}
	truths := [][]train.Box{{{X: .3, Y: .4, W: .2, H: .3}}, {{X: .7, Y: .6, W: .4, H: .2, Class: 1}}}
	for range 5 {
		n.Forward(in, truths, true)
		n.Backward(in)
		n.Update(.01, .9, .0005, 2)
	}
	dir := t.TempDir()
	cfg := testutil.WriteFile(t, dir, "trained.cfg", trainedCfg)
	weights := filepath.Join(dir, "trained.weights")
	var buf bytes.Buffer
	if err := darknet.WriteWeights(&buf, m, darknet.Header{Minor: 2, Seen: 10}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(weights, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ref, err := Load(cfg, weights)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	img := in[:m.Input.Size()]
	if err := ref.Predict(img); err != nil {
		t.Fatal(err)
	}
	want, _, _, _, err := ref.Output(len(m.Layers) - 1)
	if err != nil {
		t.Fatal(err)
	}
	e, err := floatengine.New(m, floatengine.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Forward(img); err != nil {
		t.Fatal(err)
	}
	got := e.Output(len(m.Layers) - 1)
	var worst float64
	for i := range want {
		worst = max(worst, math.Abs(float64(got[i]-want[i])))
	}
	if worst > 1e-3 {
		t.Errorf("region output differs from libdarknet's by up to %g", worst)
	}
	t.Logf("max |engine - libdarknet| on the trained model: %.2g", worst)
}
