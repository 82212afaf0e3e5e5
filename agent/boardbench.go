package agent

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"log/slog"
	"slices"
	"time"

	"golang.org/x/image/draw"

	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/web"
)

// BenchStages are the per-frame stages BenchBoard runs, in pipeline order, and the
// goroutine of the agent's pipeline each runs on (the engine's wait is not CPU).
var BenchStages = []struct{ Name, Thread string }{
	{StageDecode, "prepare"}, {StageLetterbox, "prepare"}, {StageFirst, "prepare"},
	{StageEngine, "engine"}, {StageLast, "finish"}, {StageNMS, "finish"}, {StageEncode, "feed"},
}

// StageEncode is the feed's JPEG encode of a frame for its viewers (the hub's work).
const StageEncode = "encode"

// BenchOptions says what BenchBoard runs.
type BenchOptions struct {
	ModelDir  string // QNN-MO parameter directory
	Names     string // class names file ("" numbers the classes)
	Bitstream string // simulation design (.bit with its .hwh beside)
	Image     []byte // the source image (any format imageio reads)
	// Width, Height scale the source to the camera's frame size first (0: as it is).
	Width, Height int
	// YUYV delivers the frame as a raw YUYV 4:2:2 buffer, as a UVC camera does; else as
	// a JPEG (a webcam's MJPEG, quality 90).
	YUYV   bool
	Frames int
	// Only repeats one stage (a BenchStages name) on the first frame's data; the others
	// run once. Subtracting a 1-frame run from an N-frame one isolates that stage's cost
	// under an instruction counter.
	Only string
}

// BenchResult is BenchBoard's measurement: host time per stage and frame, the engine's
// modelled time on the board, and the detections of the last frame.
type BenchResult struct {
	Frames      int
	Source      string // "jpeg 640x480" / "yuyv 640x480"
	PerFrame    map[string]time.Duration
	EngineModel time.Duration // the real engine's time (cycle model at FCLK0)
	Detections  []boxes.Detection
}

// BenchBoard runs, frame after frame, what the agent does for each frame on the board:
// decode the source frame (JPEG or YUYV), letterbox, first layer, the driver's work
// around the engine (buffer syncs and register writes, with the simulated engine in the
// FPGA's place), last layer, region decode and NMS, and the feed's JPEG encode for a
// viewer (a JPEG source's frame goes to viewers as it is). The code is the agent's own: its model stages, its YUYV conversion and the
// web hub's encoder.
func BenchBoard(ctx context.Context, o BenchOptions, log *slog.Logger) (*BenchResult, error) {
	if o.Frames < 1 {
		return nil, fmt.Errorf("bench: frames %d: want at least 1", o.Frames)
	}
	if o.Only != "" && !slices.ContainsFunc(BenchStages, func(s struct{ Name, Thread string }) bool { return s.Name == o.Only }) {
		return nil, fmt.Errorf("bench: stage %q: want one of decode, letterbox, first, engine, last, nms, encode", o.Only)
	}
	src, err := benchSource(o)
	if err != nil {
		return nil, err
	}
	c := Defaults()
	c.Backend, c.Bitstream.Path = BackendSim, o.Bitstream
	c.Model.Kind, c.Model.Dir, c.Model.Names = ModelQNN, o.ModelDir, o.Names
	c.Source.Input = SynthPrefix + "1"
	c.Telemetry.Enabled = new(bool)
	// The simulated engine finishes inside its start: the driver polls once per run,
	// not for as long as the simulation computes (the board's engine is far faster).
	c.Sim.synchronous = true
	if err := c.Validate(); err != nil {
		return nil, err
	}
	a, err := New(ctx, c, log)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	q := a.qnn
	if q == nil {
		return nil, fmt.Errorf("bench: %s is not a QNN model", o.ModelDir)
	}
	hub := web.NewHub(web.HubOptions{Quality: c.Server.JPEGQuality, Logger: log})
	defer hub.Close()
	b := &boardBench{a: a, q: q, hub: hub, src: src, thresh: float32(c.Model.Thresh), per: map[string]time.Duration{}}
	for i := 0; i < o.Frames; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := b.frame(ctx, i > 0 && o.Only != "", o.Only); err != nil {
			return nil, fmt.Errorf("bench frame %d: %w", i+1, err)
		}
	}
	res := &BenchResult{Frames: o.Frames, Source: src.String(), PerFrame: map[string]time.Duration{}, Detections: b.objs}
	for k, d := range b.per {
		res.PerFrame[k] = d / time.Duration(o.Frames)
	}
	if d := a.engine.Driver(); d != nil {
		res.EngineModel, _ = d.EngineEstimate()
	}
	return res, nil
}

// benchFrame is a source frame as the camera delivers it.
type benchFrame struct {
	jpeg   []byte // MJPEG frame, or nil
	yuyv   []byte // YUYV 4:2:2 frame, or nil
	w, h   int
	format string
}

func (f benchFrame) String() string { return fmt.Sprintf("%s %dx%d", f.format, f.w, f.h) }

func benchSource(o BenchOptions) (benchFrame, error) {
	rgba, err := imageio.DecodeRGBAWith(bytes.NewReader(o.Image), imageio.LibJPEG)
	if err != nil {
		return benchFrame{}, fmt.Errorf("bench image: %w", err)
	}
	if o.Width > 0 && o.Height > 0 {
		scaled := image.NewRGBA(image.Rect(0, 0, o.Width, o.Height))
		draw.BiLinear.Scale(scaled, scaled.Rect, rgba, rgba.Rect, draw.Src, nil)
		rgba = scaled
	}
	w, h := rgba.Rect.Dx(), rgba.Rect.Dy()
	if o.YUYV {
		if w%2 != 0 {
			return benchFrame{}, fmt.Errorf("bench: a YUYV frame needs an even width, not %d", w)
		}
		return benchFrame{yuyv: rgbaToYUYV(rgba), w: w, h: h, format: "yuyv"}, nil
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, rgba, &jpeg.Options{Quality: 90}); err != nil {
		return benchFrame{}, err
	}
	return benchFrame{jpeg: buf.Bytes(), w: w, h: h, format: "jpeg"}, nil
}

// boardBench holds one frame's data between stages, so that one stage can repeat.
type boardBench struct {
	a      *Agent
	q      *detector.QNN
	hub    *web.Hub
	src    benchFrame
	thresh float32
	per    map[string]time.Duration
	objs   []boxes.Detection

	pic    image.Image // the feed's picture
	jpeg   []byte      // the feed's JPEG as the source sent it, or nil
	f      detector.Frame
	frames uint64
}

// frame runs every stage, or (repeat) only the stage only on the kept data.
func (b *boardBench) frame(ctx context.Context, repeat bool, only string) error {
	for _, s := range BenchStages {
		if repeat && s.Name != only {
			continue
		}
		t := time.Now()
		if err := b.stage(ctx, s.Name); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		b.per[s.Name] += time.Since(t)
	}
	return nil
}

func (b *boardBench) stage(ctx context.Context, name string) (err error) {
	switch name {
	case StageDecode: // as the pipeline's decode: the planar image and the feed's picture
		b.f = detector.Frame{Thresh: b.thresh}
		if b.src.yuyv != nil {
			f := &YUYVFrame{Data: b.src.yuyv, W: b.src.w, H: b.src.h, Stride: 2 * b.src.w}
			b.f.Image, err = f.Planar()
			b.pic = f
			break
		}
		var rgba *image.RGBA
		if rgba, err = imageio.DecodeRGBAWith(bytes.NewReader(b.src.jpeg), b.a.decoder()); err == nil {
			b.pic, b.f.Image = rgba, imageio.FromRGBA(rgba)
			if feedAsIs(b.src.jpeg) {
				b.jpeg = b.src.jpeg
			}
		}
	case StageLetterbox:
		err = b.q.Letterbox(&b.f)
	case StageFirst:
		b.q.Recycle(&b.f) // the last repetition's buffer
		err = b.q.First(&b.f)
	case StageEngine: // the accelerator alone, keeping Frame.In for a repetition
		b.f.Out, err = b.q.Accelerator().Run(ctx, b.f.In)
	case StageLast:
		err = b.q.Last(&b.f)
	case StageNMS:
		err = b.q.NMS(&b.f)
		b.objs = boxes.Objects(b.f.Candidates, b.thresh, b.a.names, b.f.Image.W, b.f.Image.H)
	case StageEncode:
		b.frames++
		pic := b.pic
		if y, ok := pic.(*YUYVFrame); ok { // a new frame's planes are made for its first viewer
			pic = &YUYVFrame{Data: y.Data, W: y.W, H: y.H, Stride: y.Stride}
		}
		f := &web.Frame{ID: b.frames, Captured: time.Now(), Published: time.Now(), Image: pic, JPEG: b.jpeg}
		for _, o := range b.objs {
			f.Detections = append(f.Detections, web.Box{Class: o.Name, ClassID: o.Class, Score: o.Score, Box: o.Box})
		}
		err = b.hub.Encode(f)
	}
	return err
}

// rgbaToYUYV packs RGBA into YUYV 4:2:2 (BT.601 limited range), the inverse of
// yuyvToRGBA: the chroma of a pixel pair is the mean of the two.
func rgbaToYUYV(img *image.RGBA) []byte {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	out := make([]byte, 0, 2*w*h)
	for y := 0; y < h; y++ {
		row := img.Pix[y*img.Stride:]
		for x := 0; x < w; x += 2 {
			y0, u0, v0 := rgbToYUV(row[4*x:])
			y1, u1, v1 := rgbToYUV(row[4*x+4:])
			out = append(out, y0, uint8((int(u0)+int(u1)+1)/2), y1, uint8((int(v0)+int(v1)+1)/2))
		}
	}
	return out
}

func rgbToYUV(p []byte) (y, u, v uint8) {
	r, g, b := int(p[0]), int(p[1]), int(p[2])
	y = clip8((16843*r+33030*g+6423*b+32768)>>16 + 16)
	u = clip8((-9699*r-19071*g+28770*b+32768)>>16 + 128)
	v = clip8((28770*r-24117*g-4653*b+32768)>>16 + 128)
	return y, u, v
}
