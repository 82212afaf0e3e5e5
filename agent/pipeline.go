package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/web"
)

// Publisher receives every processed frame; it must not block (web.Hub drops frames for
// slow viewers itself).
type Publisher interface{ Publish(*web.Frame) }

// Model is the network split at the accelerator (see detector.Staged): the pipeline
// runs the CPU work before it, the accelerator and the CPU work after it in separate
// goroutines so the CPU stages of one frame overlap the engine's work on another. Each
// stage's duration is recorded in the job.
type Model = detector.Staged

// Job is one frame in flight.
type Job struct {
	ID       uint64
	Captured time.Time
	Picture  image.Image // the frame as captured, published to the feed (RGBA or YCbCr)
	JPEG     []byte      // Picture as the source encoded it, sent to viewers as is; or nil
	Name     string      // the capture's name (file name for file sources)

	// Frame is the detector's view: Image and Thresh above go in, the engine's packed
	// input and output and the candidates after NMS come out.
	detector.Frame
	Stages []StageTime
}

// StageTime is the duration of one stage for one frame.
type StageTime struct {
	Name string
	D    time.Duration
}

// Time runs f as stage name and records its duration.
func (j *Job) Time(name string, f func() error) error {
	t := time.Now()
	err := f()
	j.Stages = append(j.Stages, StageTime{name, time.Since(t)})
	return err
}

// frame is the job's detector frame with its stages timed into the job.
func (j *Job) frame() *detector.Frame {
	j.Frame.Time = j.Time
	return &j.Frame
}

// control is the state Control changes; swapped as a whole so a frame sees one version.
type control struct {
	thresh  float32
	classes []string // filter; empty = all
	filter  map[string]bool
	paused  bool
}

// PipelineOptions configure a Pipeline.
type PipelineOptions struct {
	Names    []string // class names (nil: "class N")
	Thresh   float32
	Classes  []string
	Queues   QueueConfig
	Source   SourceConfig
	OnDetect func(n int) // called after each published frame with its detection count (LED)
	Log      *slog.Logger
	// Decoder is the JPEG decoding whose samples the model was validated with:
	// qnnmo.ImageDecoder (stb_image) for QNN-MO models, libjpeg (the zero value) for
	// darknet float models, as `pynqctl detect` does by default.
	Decoder imageio.Decoder
	// Threads, when set, accounts the off-CPU time of the prepare and engine threads
	// (kernel telemetry); the engine's per frame is the stage figure StageOffCPUEngine.
	Threads ThreadTracker
}

// Pipeline runs frames from a source through a Model to a Publisher.
type Pipeline struct {
	model Model
	opt   PipelineOptions
	log   *slog.Logger
	st    *stats
	ctl   atomic.Pointer[control]
	ctlMu sync.Mutex // serialises Control's read-modify-write
	ids   atomic.Uint64
	// engineSince is when the frame now in the engine started (UnixNano), 0 when idle.
	engineSince atomic.Int64
}

// EngineBusy is how long the engine has been on its current frame (0 when idle): the
// watchdog stops pinging when it exceeds what any run may take.
func (p *Pipeline) EngineBusy() time.Duration {
	t := p.engineSince.Load()
	if t == 0 {
		return 0
	}
	return time.Since(time.Unix(0, t))
}

// NewPipeline prepares a pipeline; Run starts it.
func NewPipeline(m Model, opt PipelineOptions) *Pipeline {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	def := Defaults()
	if opt.Queues.Frames <= 0 {
		opt.Queues.Frames = def.Queues.Frames
	}
	if opt.Queues.Engine <= 0 {
		opt.Queues.Engine = def.Queues.Engine
	}
	if opt.Queues.Output <= 0 {
		opt.Queues.Output = def.Queues.Output
	}
	if opt.Source.Retry.Duration <= 0 {
		opt.Source.Retry = def.Source.Retry
	}
	if opt.Source.RetryMax.Duration < opt.Source.Retry.Duration {
		opt.Source.RetryMax = Duration{max(def.Source.RetryMax.Duration, opt.Source.Retry.Duration)}
	}
	p := &Pipeline{model: m, opt: opt, log: opt.Log, st: newStats()}
	p.ctl.Store(newControl(opt.Thresh, opt.Classes, false))
	return p
}

func newControl(thresh float32, classes []string, paused bool) *control {
	c := &control{thresh: thresh, classes: slices.Clone(classes), paused: paused}
	if len(classes) > 0 {
		c.filter = map[string]bool{}
		for _, n := range classes {
			c.filter[n] = true
		}
	}
	return c
}

// Stats returns the pipeline's figures.
func (p *Pipeline) Stats() Snapshot { return p.st.snapshot(time.Now()) }

// Opener opens the frame source; the pipeline calls it again after a failure.
type Opener func(ctx context.Context) (Source, error)

// Run pumps frames until ctx ends, then drains: frames past the first CPU stage finish
// and are published, queued captures are dropped. It returns nil after a clean drain.
func (p *Pipeline) Run(ctx context.Context, open Opener, pub Publisher) error {
	captures := newDropQueue(p.opt.Queues.Frames, func() { p.st.count(&p.st.dropped) })
	// A stage blocked on a hand-off holds one finished frame itself, so the channels
	// hold one less than the configured queue: with the defaults the CPU prepares
	// exactly one frame ahead of the engine.
	toEngine := make(chan *Job, p.opt.Queues.Engine-1)
	toFinish := make(chan *Job, p.opt.Queues.Output-1)
	var wg sync.WaitGroup
	wg.Go(func() { p.runSource(ctx, open, captures) })
	wg.Go(func() { p.prepareLoop(ctx, captures, toEngine) })
	wg.Go(func() { p.engineLoop(ctx, toEngine, toFinish) })
	wg.Go(func() { p.finishLoop(toFinish, pub) })
	wg.Wait()
	return nil
}

// dropQueue is a bounded queue whose push never blocks: when full, the oldest capture
// is dropped (a live feed wants the newest frame, not a backlog).
type dropQueue struct {
	ch     chan *Capture
	onDrop func()
}

func newDropQueue(n int, onDrop func()) *dropQueue {
	return &dropQueue{ch: make(chan *Capture, n), onDrop: onDrop}
}

// push adds c, dropping the oldest entries while full. One producer only.
func (q *dropQueue) push(c *Capture) {
	for {
		select {
		case q.ch <- c:
			return
		default:
		}
		select {
		case <-q.ch:
			q.onDrop()
		default:
		}
	}
}

// runSource opens the source, pumps it, and reopens it with a doubling delay when it
// fails.
func (p *Pipeline) runSource(ctx context.Context, open Opener, q *dropQueue) {
	delay := p.opt.Source.Retry.Duration
	for ctx.Err() == nil {
		src, err := open(ctx)
		if err == nil {
			p.st.source("running", nil)
			p.log.Info("frame source running", "source", src.String())
			var n int
			n, err = p.pump(ctx, src, q)
			src.Close()
			if n > 0 {
				delay = p.opt.Source.Retry.Duration // it worked for a while: start over
			}
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, io.EOF) {
			p.st.source("ended", nil)
			p.log.Info("frame source ended (source.loop = false)")
			<-ctx.Done()
			return
		}
		p.st.source("retrying", err)
		p.log.Warn("frame source failed; retrying", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, p.opt.Source.RetryMax.Duration)
	}
}

// pump reads frames at the fps limit: file sources wait for their turn (or, without a
// limit, for room in the queue); live sources skip frames that come too early.
func (p *Pipeline) pump(ctx context.Context, src Source, q *dropQueue) (int, error) {
	var interval time.Duration
	if p.opt.Source.FPS > 0 {
		interval = time.Duration(float64(time.Second) / p.opt.Source.FPS)
	}
	live := src.Live()
	var next time.Time
	n := 0
	for {
		if !live && interval > 0 {
			if d := time.Until(next); d > 0 {
				select {
				case <-ctx.Done():
					return n, ctx.Err()
				case <-time.After(d):
				}
			}
			next = time.Now().Add(interval)
		}
		c, err := p.next(ctx, src, live)
		if err != nil {
			return n, err
		}
		if live && interval > 0 {
			if c.Time.Before(next) {
				continue
			}
			next = c.Time.Add(interval)
		}
		n++
		p.st.frameIn(c.Time)
		if !live && interval == 0 {
			// Files have no real time: without a limit they go as fast as the
			// pipeline takes them instead of being read just to be dropped.
			c.pulled = true
			select {
			case q.ch <- c:
			case <-ctx.Done():
				return n, ctx.Err()
			}
			continue
		}
		q.push(c)
	}
}

// next reads a frame; a live source that delivers nothing for source.stall_timeout
// has stalled (a camera that keeps the connection but stopped sending) and is reopened.
func (p *Pipeline) next(ctx context.Context, src Source, live bool) (*Capture, error) {
	stall := p.opt.Source.StallTimeout.Duration
	if !live || stall <= 0 {
		return src.Next(ctx)
	}
	sctx, cancel := context.WithTimeoutCause(ctx, stall, errStalled)
	defer cancel()
	c, err := src.Next(sctx)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(sctx), errStalled) {
		return nil, fmt.Errorf("%s: no frame for %v: %w", src, stall, errStalled)
	}
	return c, err
}

var errStalled = errors.New("source stalled")

// prepareLoop decodes captures and runs the CPU stages before the engine. It stops
// taking captures when ctx ends; what it already handed on still finishes.
func (p *Pipeline) prepareLoop(ctx context.Context, q *dropQueue, out chan<- *Job) {
	defer close(out)
	tid := p.trackThread("prepare")
	for {
		var c *Capture
		select {
		case <-ctx.Done():
			return
		case c = <-q.ch:
		}
		p.markFrame(tid) // the wait for a capture is idle time, not the frame's
		if ctx.Err() != nil {
			return
		}
		if c.pulled {
			// A file has no capture time: its latency counts from when the
			// pipeline took it, not from when it was read ahead into the queue.
			c.Time = time.Now()
		}
		ctl := p.ctl.Load()
		if ctl.paused {
			p.st.count(&p.st.paused)
			continue
		}
		p.st.taken(time.Now())
		j := &Job{ID: p.ids.Add(1), Captured: c.Time, Name: c.Name}
		j.Thresh = ctl.thresh
		if err := guard(func() error { return p.decode(j, c) }); err != nil {
			p.frameError(j, "decode", err)
			continue
		}
		if err := guard(func() error { return p.model.Prepare(j.frame()) }); err != nil {
			p.frameError(j, "prepare", err)
			continue
		}
		if off, ok := p.markFrame(tid); ok {
			j.Stages = append(j.Stages, StageTime{StageOffCPUPrepare, off})
		}
		// Blocking hand-off: drops happen at the capture queue, before any work was
		// spent on a frame, and the engine never waits for the CPU's next frame.
		out <- j
	}
}

// trackThread locks the calling goroutine to its OS thread and registers that thread
// with the telemetry under name; it returns the thread id, 0 when nothing is tracked.
// The loop keeps the thread to the end: an untracked goroutine cannot move onto it.
func (p *Pipeline) trackThread(name string) int {
	if p.opt.Threads == nil {
		return 0
	}
	runtime.LockOSThread()
	tid := gettid()
	if tid == 0 {
		return 0
	}
	if err := p.opt.Threads.TrackThreadAs(tid, name); err != nil {
		p.log.Info("thread off-CPU time not measured", "thread", name, "err", err)
		return 0
	}
	return tid
}

// markFrame ends an off-CPU interval of the tracked thread tid; ok is false when
// nothing is tracked.
func (p *Pipeline) markFrame(tid int) (time.Duration, bool) {
	if tid == 0 {
		return 0, false
	}
	return p.opt.Threads.MarkFrame(tid), true
}

func (p *Pipeline) decode(j *Job, c *Capture) error {
	return j.Time(StageDecode, func() (err error) {
		if c.YUYV != nil { // the feed's picture is the frame itself (see YUYVFrame)
			j.Image, err = c.YUYV.Planar()
			j.Picture = c.YUYV
			return err
		}
		rgba := c.Image
		if rgba == nil {
			if rgba, err = imageio.DecodeRGBAWith(bytes.NewReader(c.Data), p.opt.Decoder); err != nil {
				return err
			}
			if feedAsIs(c.Data) {
				j.JPEG = c.Data
			}
		}
		j.Picture, j.Image = rgba, imageio.FromRGBA(rgba)
		return nil
	})
}

// SourceFailure is the frame source's last error while it fails (the pipeline reopens
// it with a growing delay), or "" while it delivers or has not failed.
func (p *Pipeline) SourceFailure() string { return p.st.sourceFailure() }

// engineLoop runs the accelerator. It drains its queue after ctx ends, without
// cancelling runs in progress (a cancelled engine run would need a PL reset).
func (p *Pipeline) engineLoop(ctx context.Context, in <-chan *Job, out chan<- *Job) {
	defer close(out)
	ectx := context.WithoutCancel(ctx)
	tid := p.trackThread("engine")
	for j := range in {
		p.markFrame(tid) // the wait for a job is idle time, not the frame's
		p.engineSince.Store(time.Now().UnixNano())
		err := guard(func() error { return p.model.Accelerate(ectx, j.frame()) })
		p.engineSince.Store(0)
		if off, ok := p.markFrame(tid); ok {
			j.Stages = append(j.Stages, StageTime{StageOffCPUEngine, off})
		}
		if err != nil {
			p.frameError(j, "engine", err)
			continue
		}
		j.In = nil // let the GC have it while the last layer runs
		out <- j
	}
}

// finishLoop runs the CPU stages after the engine and publishes.
func (p *Pipeline) finishLoop(in <-chan *Job, pub Publisher) {
	for j := range in {
		if err := guard(func() error { return p.model.Finish(j.frame()) }); err != nil {
			p.frameError(j, "finish", err)
			continue
		}
		p.publish(j, pub)
	}
}

func (p *Pipeline) publish(j *Job, pub Publisher) {
	ctl := p.ctl.Load()
	boxes := p.boxes(j, ctl)
	f := &web.Frame{ID: j.ID, Captured: j.Captured, Image: j.Picture, JPEG: j.JPEG, Detections: boxes}
	stages := web.StageTimes{}
	for _, s := range j.Stages {
		stages[s.Name] += float64(s.D) / float64(time.Millisecond)
	}
	pubStart := time.Now()
	f.Published = pubStart
	sn := p.st.snapshot(pubStart)
	f.Stats = web.FrameStats{
		SourceFPS: sn.FPSIn, DetectFPS: sn.FPSOut, Dropped: sn.Dropped,
		InferenceMS: stages[StageEngine],
		LatencyMS:   float64(pubStart.Sub(j.Captured)) / float64(time.Millisecond),
		Stages:      stages,
	}
	if pub != nil {
		pub.Publish(f)
	}
	done := time.Now()
	for _, s := range j.Stages {
		p.st.stage(s.Name, s.D)
	}
	p.st.stage(StagePublish, done.Sub(pubStart))
	p.st.frameOut(done, done.Sub(j.Captured), len(boxes))
	if p.opt.OnDetect != nil {
		p.opt.OnDetect(len(boxes))
	}
}

// boxes applies the threshold and class filter to the job's candidates.
func (p *Pipeline) boxes(j *Job, ctl *control) []web.Box {
	objs := boxes.Objects(j.Candidates, j.Thresh, p.opt.Names, j.Image.W, j.Image.H)
	boxes := make([]web.Box, 0, len(objs))
	for _, o := range objs {
		if ctl.filter != nil && !ctl.filter[o.Name] {
			continue
		}
		boxes = append(boxes, web.Box{Class: o.Name, ClassID: o.Class, Score: o.Score, Box: o.Box})
	}
	return boxes
}

// guard turns a panic in a stage into the frame's error: one hostile frame must not
// take the daemon down.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return f()
}

func (p *Pipeline) frameError(j *Job, stage string, err error) {
	p.st.mu.Lock()
	p.st.errors++
	n := p.st.errors
	p.st.lastErr = stage + ": " + firstLine(err.Error())
	p.st.mu.Unlock()
	// A camera sending garbage fails every frame: log the first few, then every 100th.
	if n <= 10 || n%100 == 0 {
		p.log.Warn("frame failed", "frame", j.ID, "stage", stage, "err", err, "errors_so_far", n)
	}
}

// Stalled describes a pipeline that took frames but finished none for longer than
// window ("" when it is not stalled): a wedged or always-failing engine.
func (p *Pipeline) Stalled(window time.Duration) string { return p.st.stalled(time.Now(), window) }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Control changes the running pipeline; names is the model's class list used to check
// the class filter (nil: any name).
func (p *Pipeline) Control(c web.Control, names []string) error {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	cur := p.ctl.Load()
	thresh, classes, paused := cur.thresh, cur.classes, cur.paused
	if c.Thresh != nil {
		t := *c.Thresh
		if !(t > 0 && t < 1) {
			return fmt.Errorf("thresh %v must be between 0 and 1", t)
		}
		thresh = t
	}
	if c.Classes != nil {
		for _, n := range *c.Classes {
			if names != nil && !slices.Contains(names, n) {
				return fmt.Errorf("class %q is not one of the model's classes", n)
			}
		}
		classes = *c.Classes
	}
	if c.Paused != nil {
		paused = *c.Paused
	}
	p.ctl.Store(newControl(thresh, classes, paused))
	return nil
}

// controlState returns the current threshold, class filter and pause flag.
func (p *Pipeline) controlState() (float32, []string, bool) {
	c := p.ctl.Load()
	return c.thresh, slices.Clone(c.classes), c.paused
}
