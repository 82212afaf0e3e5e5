package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/fpgadetector/pynq-agent/overlay/qnndriver"
	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/offload"
	"github.com/fpgadetector/pynq-agent/web"
)

// FeedDuringVerify is what the live feed does while the agent verifies: it keeps
// running. Verification images go through the same stages as frames (decode,
// letterbox + first layer, engine, last layer + region decode + NMS) in the HTTP
// request's goroutine; the engine driver serializes runs, so a verification image
// takes the engine between two live frames and the feed slows by one engine run per
// image instead of stopping. Status reports it (Extra["verification"]) and the page
// shows "verifying" while images come in.
const FeedDuringVerify = "interleaved"

// verifyLinger is how long after the last verification image status still says active.
const verifyLinger = 5 * time.Second

// tracer is an accelerator that can report every layer's output (the QNN driver).
type tracer interface {
	RunTrace(ctx context.Context, in []byte) ([]qnndriver.LayerOutput, error)
}

var _ tracer = (*qnndriver.Driver)(nil)

// Verify runs one image through the board path as the pipeline runs frames and reports
// the packed engine input and output digests, the detections and, on request, every
// engine layer's digest and one layer's full output. It implements web.Verifier.
func (a *Agent) Verify(ctx context.Context, req web.VerifyRequest) (*web.VerifyResult, error) {
	q := a.qnn
	if q == nil {
		return nil, fmt.Errorf("%w: the agent runs a float darknet model on the CPU; verification compares the QNN engine with the host reference", web.ErrNoVerify)
	}
	a.verifyMu.Lock() // one image at a time: each holds 8 MiB of engine input
	defer a.verifyMu.Unlock()
	a.verifyActive.Store(time.Now().UnixNano())
	// Finish time before clearing active: a status poll between the two stores must not
	// see neither (idle, and the previous image's finish time).
	defer func() { a.verifyLast.Store(time.Now().UnixNano()); a.verifyActive.Store(0) }()
	// A client that hangs up must not interrupt an engine run (that needs a PL reset).
	ctx = context.WithoutCancel(ctx)

	thresh := req.Thresh
	if thresh <= 0 {
		thresh, _, _ = a.pipe.controlState()
	}
	dec := a.decoder()
	rgba, err := imageio.DecodeRGBAWith(bytes.NewReader(req.Image), dec)
	if err != nil {
		return nil, fmt.Errorf("%w: decode: %w", web.ErrBadRequest, err)
	}
	j := &Job{Picture: rgba}
	j.Image, j.Thresh = imageio.FromRGBA(rgba), thresh
	if err := q.Prepare(j.frame()); err != nil {
		return nil, fmt.Errorf("first layer: %w", err)
	}
	res := &web.VerifyResult{Width: j.Image.W, Height: j.Image.H, Decoder: dec.String(), Thresh: thresh, Feed: FeedDuringVerify}
	if res.InputSHA256, err = PackedSHA256(j.In, q.Network().First.OutLayout()); err != nil {
		return nil, err
	}
	if req.Trace {
		err = a.verifyTrace(ctx, q, j, req, res)
	} else {
		err = q.Accelerate(ctx, j.frame())
	}
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	for _, s := range j.Stages {
		if s.Name == StageEngine {
			res.EngineMS = float64(s.D) / float64(time.Millisecond)
		}
	}
	if res.OutputSHA256, err = PackedSHA256(j.Out, q.Accelerator().OutLayout()); err != nil {
		return nil, err
	}
	if err := q.Finish(j.frame()); err != nil {
		return nil, fmt.Errorf("last layer: %w", err)
	}
	res.Detections = []web.Box{}
	for _, o := range boxes.Objects(j.Candidates, thresh, a.names, j.Image.W, j.Image.H) {
		res.Detections = append(res.Detections, web.Box{Class: o.Name, ClassID: o.Class, Score: o.Score, Box: o.Box})
	}
	a.verified.Add(1)
	return res, nil
}

// verifyTrace is Accelerate with every layer's output copied out (the driver's
// RunTrace).
func (a *Agent) verifyTrace(ctx context.Context, q *detector.QNN, j *Job, req web.VerifyRequest, res *web.VerifyResult) error {
	tr, ok := q.Accelerator().(tracer)
	if !ok {
		return fmt.Errorf("%w: the accelerator %T cannot trace layers", web.ErrNoVerify, q.Accelerator())
	}
	var outs []qnndriver.LayerOutput
	err := j.Time(StageEngine, func() (err error) { outs, err = tr.RunTrace(ctx, j.In); return err })
	q.Recycle(&j.Frame)
	if err != nil {
		return err
	}
	if req.Dump >= len(outs) {
		return fmt.Errorf("%w: dump layer %d: the engine has layers 0..%d", web.ErrBadRequest, req.Dump, len(outs)-1)
	}
	for k, o := range outs {
		sum, err := PackedSHA256(o.Data, o.Layout)
		if err != nil {
			return fmt.Errorf("layer %s: %w", o.Name, err)
		}
		d := web.LayerDigest{Index: k, Name: o.Name, Channels: o.Layout.Channels, Dim: o.Layout.Dim, SHA256: sum}
		res.Layers = append(res.Layers, d)
		if k == req.Dump {
			res.Dump = &web.LayerDump{LayerDigest: d, RecordBytes: o.Layout.RecordBytes, Data: o.Data}
		}
	}
	j.Out = outs[len(outs)-1].Data
	return nil
}

// PackedSHA256 is the SHA-256 of a packed activation buffer with its padding bits
// zeroed: it depends only on the 3-bit levels, so the engine (which leaves unused
// record bits as they were) and the host reference (which zeroes them) can be compared
// by digest.
func PackedSHA256(buf []byte, l offload.Layout) (string, error) {
	levels, err := offload.Unpack(buf, l)
	if err != nil {
		return "", err
	}
	packed, err := offload.Pack(levels, l)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(packed)
	return hex.EncodeToString(sum[:]), nil
}

// EngineLayer is one engine layer of a model as a traced run reports it.
type EngineLayer struct {
	Name   string
	Layout offload.Layout
}

// EngineLayers lists the model's engine layers in run order (split layers once), the
// order of the driver's RunTrace and of qnnmo.Engine.RunTrace.
func EngineLayers(m *quant.Model) ([]EngineLayer, error) {
	runs, err := offload.Plan(m, offload.W1A3)
	if err != nil {
		return nil, err
	}
	var out []EngineLayer
	for i := 0; i < len(runs); i += runs[i].Parts {
		r := runs[i]
		out = append(out, EngineLayer{Name: m.Layers[r.Conv].Name, Layout: offload.DDRLayout(int(r.OFMCh)*r.Parts, r.OutDim)})
	}
	return out, nil
}

// FlipWeightBit flips one bit of an engine layer's preloaded weight buffer (buf 0:
// weights, 1: thresholds) in the simulated DDR: fault injection for testing that
// verification catches and names a corrupted layer. Sim backend only.
func (a *Agent) FlipWeightBit(layer string, buf, bit int) error {
	if a.machine == nil || a.engine == nil || a.engine.Driver() == nil {
		return fmt.Errorf("flip weight bit: only the sim backend's DDR can be corrupted on purpose")
	}
	phys, size, err := a.engine.Driver().WeightBuffer(layer, buf)
	if err != nil {
		return err
	}
	if bit < 0 || bit >= 8*size {
		return fmt.Errorf("flip weight bit %d: the buffer has %d bits", bit, 8*size)
	}
	r, err := a.machine.Map(phys, size)
	if err != nil {
		return err
	}
	defer r.Close()
	off := uint32(bit/32) * 4
	r.Write32(off, r.Read32(off)^(1<<(bit%32)))
	return nil
}

// verifyStatus is Status.Extra["verification"].
func (a *Agent) verifyStatus() map[string]any {
	m := map[string]any{"feed": FeedDuringVerify, "images": a.verified.Load(), "active": false}
	// A client sends images one after another: the gaps between them count as active
	// so a status poll does not miss a run.
	if t := a.verifyActive.Load(); t != 0 || time.Since(time.Unix(0, a.verifyLast.Load())) < verifyLinger {
		m["active"] = true
	}
	return m
}
