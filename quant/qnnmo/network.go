package qnnmo

import (
	"fmt"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/floatengine"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// Network is a QNN-MO model's parts on the host: the float first layer and 3-bit
// quantizer, the engine layers (the host reference), the float last layer and the
// region head (quant/detector.QNN runs them as a board does). Its methods keep no state
// between calls, so one Network may serve several goroutines.
type Network struct {
	Model  *quant.Model
	First  *FirstLayer
	Engine *Engine
	Last   *LastLayer
	head   int
}

// NewNetwork prepares a model imported by [LoadDir] (or built alike). threads <= 0 uses
// GOMAXPROCS goroutines.
func NewNetwork(m *quant.Model, threads int) (*Network, error) {
	d := &Network{Model: m}
	var err error
	if d.First, err = NewFirstLayer(m, threads); err != nil {
		return nil, err
	}
	if d.Engine, err = NewEngine(m, offload.W1A3, threads); err != nil {
		return nil, err
	}
	if d.Last, err = NewLastLayer(m, threads); err != nil {
		return nil, err
	}
	heads := m.Heads()
	if len(heads) != 1 || m.Layers[heads[0]].Kind != quant.KindRegion || heads[0] != d.Last.layer.Index+1 {
		return nil, fmt.Errorf("the model must end in the last float layer and one region head")
	}
	d.head = heads[0]
	return d, nil
}

// Output runs the last layer and the region activation on the engine's packed output and
// returns the head's values (the input of [boxes.Decode]).
func (d *Network) Output(out []byte) ([]float32, error) {
	x, err := d.Last.Run(out, d.Engine.OutLayout())
	if err != nil {
		return nil, err
	}
	h := d.Model.Layers[d.head]
	floatengine.RegionActivate(x, h.Head, h.Out.H*h.Out.W)
	return x, nil
}

// Head is the index of the model's region head layer.
func (d *Network) Head() int { return d.head }

// Classes is the head's class count.
func (d *Network) Classes() int { return d.Model.Layers[d.head].Head.Classes }
