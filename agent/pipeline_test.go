package agent

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/web"
)

// fakeModel stands in for the network: Accelerate waits on gate (when set) and sleeps
// delay, Finish reports one box per frame.
type fakeModel struct {
	delay   time.Duration
	gate    chan struct{}
	infers  atomic.Int64
	started chan struct{} // receives once per Accelerate start, when non-nil
}

func (m *fakeModel) Prepare(f *detector.Frame) error {
	return f.Time(StageFirst, func() error { return nil })
}

func (m *fakeModel) Accelerate(ctx context.Context, f *detector.Frame) error {
	return f.Time(StageEngine, func() error {
		if m.started != nil {
			select {
			case m.started <- struct{}{}:
			default:
			}
		}
		if m.gate != nil {
			<-m.gate
		}
		if m.delay > 0 {
			time.Sleep(m.delay)
		}
		m.infers.Add(1)
		return nil
	})
}

func (m *fakeModel) Finish(f *detector.Frame) error {
	f.Candidates = []boxes.Detection{{Class: 0, Score: 0.9, Box: [4]float32{0, 0, 1, 1}, Objectness: 0.9, Probs: []float32{0.9, 0}}}
	return nil
}

func (m *fakeModel) Classes() int { return 2 }

// fakeSource emits n tiny frames as fast as it is asked, naming each by its number,
// then ends (io.EOF); done closes when it has emitted them all.
type fakeSource struct {
	n, i     int
	live     bool
	img      *image.RGBA
	numbered bool // capture i is i pixels wide, so that a model can tell frames apart
	done     chan struct{}
}

func newFakeSource(n int, live bool) *fakeSource {
	return &fakeSource{n: n, live: live, img: image.NewRGBA(image.Rect(0, 0, 4, 4)), done: make(chan struct{})}
}

func (s *fakeSource) Next(ctx context.Context) (*Capture, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.i == s.n {
		close(s.done)
		return nil, io.EOF
	}
	s.i++
	img := s.img
	if s.numbered {
		img = image.NewRGBA(image.Rect(0, 0, s.i, 1))
	}
	return &Capture{Image: img, Time: time.Now(), Name: strconv.Itoa(s.i)}, nil
}
func (s *fakeSource) Live() bool     { return s.live }
func (s *fakeSource) Close() error   { return nil }
func (s *fakeSource) String() string { return "fake" }

// collector is a Publisher that records frames.
type collector struct {
	mu     sync.Mutex
	frames []*web.Frame
	notify chan struct{}
}

func newCollector() *collector { return &collector{notify: make(chan struct{}, 1)} }

func (c *collector) Publish(f *web.Frame) {
	c.mu.Lock()
	c.frames = append(c.frames, f)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames)
}

// waitFor polls cond until it holds or the test's deadline nears.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func opener(s Source) Opener { return func(context.Context) (Source, error) { return s, nil } }

func runPipeline(tb testing.TB, p *Pipeline, open Opener, pub Publisher) (cancel func()) {
	tb.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.Run(ctx, open, pub)
		close(done)
	}()
	cancel = func() {
		stop()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			tb.Fatal("pipeline did not stop")
		}
	}
	tb.Cleanup(cancel)
	return cancel
}

func TestDropQueueDropsOldest(t *testing.T) {
	var drops int
	q := newDropQueue(2, func() { drops++ })
	for i := 1; i <= 5; i++ {
		q.push(&Capture{Name: strconv.Itoa(i)})
	}
	if drops != 3 {
		t.Fatalf("drops %d, want 3", drops)
	}
	if a, b := (<-q.ch).Name, (<-q.ch).Name; a != "4" || b != "5" {
		t.Fatalf("queue kept %s, %s; want the newest 4, 5", a, b)
	}
}

// TestSlowEngineDropsOldestNeverBlocksSource: with the engine stuck, a live source
// still delivers every frame (the queue drops the oldest), and once the engine moves
// again the newest frames are the ones processed.
func TestSlowEngineDropsOldestNeverBlocksSource(t *testing.T) {
	const n = 500
	m := &fakeModel{gate: make(chan struct{}), started: make(chan struct{}, 1)}
	src := newFakeSource(n, true)
	p := NewPipeline(m, PipelineOptions{Thresh: 0.5, Queues: QueueConfig{Frames: 2, Engine: 1, Output: 1}})
	pub := newCollector()
	runPipeline(t, p, opener(src), pub)

	select {
	case <-src.done: // the source emitted all frames while the engine was stuck
	case <-time.After(30 * time.Second):
		t.Fatal("the source blocked behind a stuck engine")
	}
	sn := p.Stats()
	if sn.FramesIn != n {
		t.Fatalf("frames in %d, want %d", sn.FramesIn, n)
	}
	if sn.Dropped < n-5 {
		t.Fatalf("dropped %d of %d with the engine stuck; want nearly all", sn.Dropped, n)
	}
	close(m.gate)
	waitFor(t, "the queued frames", func() bool {
		s := p.Stats()
		return s.FramesOut+s.Dropped == n
	})
	pub.mu.Lock()
	defer pub.mu.Unlock()
	last := pub.frames[len(pub.frames)-1]
	if got := len(pub.frames); got > 6 {
		t.Errorf("published %d frames, want at most the few in flight", got)
	}
	// Frame IDs are assigned in capture order as the CPU stage takes them; the last one
	// published must be the newest capture (n), i.e. the queue kept the newest.
	if last.ID != uint64(len(pub.frames)) {
		t.Errorf("last published ID %d, want %d", last.ID, len(pub.frames))
	}
	if sn := p.Stats(); sn.Dropped+sn.FramesOut != n || sn.Errors != 0 {
		t.Errorf("in %d = out %d + dropped %d? errors %d", n, sn.FramesOut, sn.Dropped, sn.Errors)
	}
}

// TestNewestFrameSurvives checks by capture number that the frame processed after a
// backlog is the latest capture, not an old one.
func TestNewestFrameSurvives(t *testing.T) {
	const n = 100
	m := &fakeModel{gate: make(chan struct{})}
	src := newFakeSource(n, true)
	src.numbered = true
	var names []string
	var mu sync.Mutex
	mm := &namingModel{fakeModel: m, seen: func(name string) { mu.Lock(); names = append(names, name); mu.Unlock() }}
	p := NewPipeline(mm, PipelineOptions{Thresh: 0.5, Queues: QueueConfig{Frames: 2, Engine: 1, Output: 1}})
	runPipeline(t, p, opener(src), newCollector())
	<-src.done
	close(m.gate)
	waitFor(t, "drain", func() bool { s := p.Stats(); return s.FramesOut+s.Dropped == n })
	mu.Lock()
	defer mu.Unlock()
	if last := names[len(names)-1]; last != strconv.Itoa(n) {
		t.Fatalf("last frame prepared was capture %s, want the newest %d (prepared: %v)", last, n, names)
	}
}

// namingModel records the capture number of each prepared frame (its width: see
// fakeSource.numbered).
type namingModel struct {
	*fakeModel
	seen func(string)
}

func (n *namingModel) Prepare(f *detector.Frame) error {
	n.seen(strconv.Itoa(f.Image.W))
	return nil
}

// TestDrainOnCancel: cancelling lets frames already past the CPU stage finish and be
// published; Run returns.
func TestDrainOnCancel(t *testing.T) {
	m := &fakeModel{gate: make(chan struct{}), started: make(chan struct{}, 1)}
	src := newFakeSource(1000, true)
	p := NewPipeline(m, PipelineOptions{Thresh: 0.5})
	pub := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx, opener(src), pub) }()
	<-m.started // a frame is inside the engine
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned while a frame was inside the engine")
	case <-time.After(20 * time.Millisecond):
	}
	close(m.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if pub.count() == 0 {
		t.Fatal("the in-flight frame was not published")
	}
	if got := int(m.infers.Load()); got != pub.count() {
		t.Errorf("engine ran %d frames, %d published: in-flight frames were lost", got, pub.count())
	}
}

// TestSoakNoGoroutineGrowth runs thousands of tiny frames through a fast fake engine.
func TestSoakNoGoroutineGrowth(t *testing.T) {
	frames := 3000
	if testing.Short() {
		frames = 500
	}
	before := runtime.NumGoroutine()
	m := &fakeModel{}
	src := newFakeSource(frames, false) // files-like: no drops, every frame processed
	p := NewPipeline(m, PipelineOptions{Thresh: 0.5})
	pub := &countingPub{}
	cancel := runPipeline(t, p, opener(src), pub)
	var mid int
	waitFor(t, "half the frames", func() bool { return pub.n.Load() >= int64(frames/2) })
	mid = runtime.NumGoroutine()
	waitFor(t, "all frames", func() bool { return pub.n.Load() == int64(frames) })
	end := runtime.NumGoroutine()
	cancel()
	if end > mid+2 {
		t.Errorf("goroutines grew from %d at half-way to %d at the end", mid, end)
	}
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before+1 })
	var ms runtime.MemStats
	// Two collections: a sync.Pool (the engine inputs, 8 MiB each) keeps its objects
	// through one.
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > 64<<20 {
		t.Errorf("heap %d MiB after the soak", ms.HeapAlloc>>20)
	}
	sn := p.Stats()
	if sn.FramesOut != uint64(frames) || sn.Dropped != 0 || sn.Errors != 0 {
		t.Errorf("out %d dropped %d errors %d, want %d/0/0", sn.FramesOut, sn.Dropped, sn.Errors, frames)
	}
}

type countingPub struct{ n atomic.Int64 }

func (c *countingPub) Publish(*web.Frame) { c.n.Add(1) }

func TestControl(t *testing.T) {
	p := NewPipeline(&fakeModel{}, PipelineOptions{Thresh: 0.3})
	names := []string{"person", "chair"}
	bad := float32(1.5)
	if err := p.Control(web.Control{Thresh: &bad}, names); err == nil {
		t.Error("thresh 1.5 accepted")
	}
	good := float32(0.6)
	unknown := []string{"chair", "sofa"}
	if err := p.Control(web.Control{Thresh: &good, Classes: &unknown}, names); err == nil {
		t.Error("unknown class accepted")
	}
	if th, _, _ := p.controlState(); th != 0.3 {
		t.Errorf("a rejected control changed the threshold to %v", th)
	}
	classes, paused := []string{"chair"}, true
	if err := p.Control(web.Control{Thresh: &good, Classes: &classes, Paused: &paused}, names); err != nil {
		t.Fatal(err)
	}
	th, cl, pa := p.controlState()
	if th != good || len(cl) != 1 || cl[0] != "chair" || !pa {
		t.Errorf("state %v %v %v", th, cl, pa)
	}
}

func TestPauseAndClassFilter(t *testing.T) {
	m := &fakeModel{}
	src := newFakeSource(1<<30, false)
	p := NewPipeline(m, PipelineOptions{Thresh: 0.5, Names: []string{"person", "chair"}, Source: SourceConfig{FPS: 500}})
	pub := newCollector()
	runPipeline(t, p, opener(src), pub)
	waitFor(t, "frames", func() bool { return pub.count() > 3 })
	pub.mu.Lock()
	if d := pub.frames[0].Detections; len(d) != 1 || d[0].Class != "person" {
		t.Errorf("detections %+v, want one person", d)
	}
	pub.mu.Unlock()
	only := []string{"chair"}
	if err := p.Control(web.Control{Classes: &only}, p.opt.Names); err != nil {
		t.Fatal(err)
	}
	n := pub.count()
	waitFor(t, "filtered frames", func() bool { return pub.count() > n+3 })
	pub.mu.Lock()
	if d := pub.frames[len(pub.frames)-1].Detections; len(d) != 0 {
		t.Errorf("class filter chair let through %+v", d)
	}
	pub.mu.Unlock()
	paused := true
	p.Control(web.Control{Paused: &paused}, nil)
	waitFor(t, "paused frames", func() bool { return p.Stats().Paused > 5 })
	n = pub.count()
	waitFor(t, "more paused frames", func() bool { return p.Stats().Paused > 20 })
	if pub.count() > n+3 { // at most the frames already in flight
		t.Errorf("published %d frames while paused", pub.count()-n)
	}
}

// failingSource fails to open a few times, then works: the pipeline retries.
func TestSourceRetry(t *testing.T) {
	var opens atomic.Int64
	src := newFakeSource(1<<30, false)
	open := func(context.Context) (Source, error) {
		if opens.Add(1) <= 3 {
			return nil, errors.New("camera unplugged")
		}
		return src, nil
	}
	p := NewPipeline(&fakeModel{}, PipelineOptions{Thresh: 0.5,
		Source: SourceConfig{Retry: Duration{time.Millisecond}, RetryMax: Duration{4 * time.Millisecond}}})
	pub := newCollector()
	runPipeline(t, p, open, pub)
	waitFor(t, "frames after retries", func() bool { return pub.count() > 0 })
	sn := p.Stats()
	if sn.SourceErrors != 3 || sn.SourceState != "running" || sn.SourceError != "" || p.SourceFailure() != "" {
		t.Errorf("source errors %d state %q err %q failure %q", sn.SourceErrors, sn.SourceState, sn.SourceError, p.SourceFailure())
	}
}

// A source that keeps failing is reported as failing, with its error.
func TestSourceFailureReported(t *testing.T) {
	open := func(context.Context) (Source, error) { return nil, errors.New("camera unplugged") }
	p := NewPipeline(&fakeModel{}, PipelineOptions{Thresh: 0.5,
		Source: SourceConfig{Retry: Duration{time.Millisecond}, RetryMax: Duration{4 * time.Millisecond}}})
	runPipeline(t, p, open, newCollector())
	waitFor(t, "the failure reported", func() bool { return p.SourceFailure() == "camera unplugged" })
}

// stallSource connects but never delivers a frame.
type stallSource struct{}

func (stallSource) Next(ctx context.Context) (*Capture, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (stallSource) Live() bool     { return true }
func (stallSource) Close() error   { return nil }
func (stallSource) String() string { return "stuck camera" }

func TestStalledSourceIsReopened(t *testing.T) {
	var opens atomic.Int64
	open := func(context.Context) (Source, error) { opens.Add(1); return stallSource{}, nil }
	p := NewPipeline(&fakeModel{}, PipelineOptions{Thresh: 0.5, Source: SourceConfig{
		Retry: Duration{time.Millisecond}, RetryMax: Duration{time.Millisecond}, StallTimeout: Duration{10 * time.Millisecond}}})
	runPipeline(t, p, open, newCollector())
	waitFor(t, "reopens", func() bool { return opens.Load() >= 3 })
	waitFor(t, "a stall reported", func() bool {
		sn := p.Stats()
		return sn.SourceErrors >= 2 && strings.Contains(sn.SourceError, "no frame for 10ms: source stalled")
	})
}

// panicModel panics on every other frame.
type panicModel struct {
	fakeModel
	n atomic.Int64
}

func (m *panicModel) Prepare(*detector.Frame) error {
	if m.n.Add(1)%2 == 0 {
		var nilMap map[string]int
		nilMap["boom"] = 1
	}
	return nil
}

func TestStagePanicIsAFrameError(t *testing.T) {
	p := NewPipeline(&panicModel{}, PipelineOptions{Thresh: 0.5})
	pub := newCollector()
	runPipeline(t, p, opener(newFakeSource(1<<30, false)), pub)
	waitFor(t, "frames around the panics", func() bool { return pub.count() >= 5 && p.Stats().Errors >= 5 })
}

func TestRateMeter(t *testing.T) {
	var r rateMeter
	t0 := time.Unix(1000, 0)
	if r.rate(t0) != 0 {
		t.Error("rate without events")
	}
	for i := range 5 { // one frame every 6 s, slower than rateIdle
		r.add(t0.Add(time.Duration(i) * 6 * time.Second))
	}
	last := t0.Add(24 * time.Second)
	if got := r.rate(last.Add(time.Second)); got < 0.16 || got > 0.17 {
		t.Errorf("slow pipeline reads %v frames/s, want 1/6", got)
	}
	if got := r.rate(last.Add(12 * time.Second)); got >= 1.0/6 || got <= 0 {
		t.Errorf("after a long gap %v, want lower than 1/6 but not 0", got)
	}
	if got := r.rate(last.Add(2 * time.Minute)); got != 0 {
		t.Errorf("idle for 20 intervals reads %v", got)
	}
}

// failingModel fails every engine run, as an engine whose runs all time out.
type failingModel struct{ fakeModel }

func (m *failingModel) Accelerate(ctx context.Context, f *detector.Frame) error {
	return errors.New("engine run timed out after 10s\nstack")
}

// TestStalledPipeline: frames going in and none coming out for the stall window is
// reported with the count and the last frame error, both when the engine hangs and when
// it fails every frame; a published frame ends it; a paused pipeline is not stalled.
func TestStalledPipeline(t *testing.T) {
	const window = 150 * time.Millisecond
	hang := &fakeModel{gate: make(chan struct{})}
	p := NewPipeline(hang, PipelineOptions{Thresh: 0.5})
	pub := newCollector()
	runPipeline(t, p, opener(newFakeSource(1<<30, true)), pub)
	waitFor(t, "the hang to be reported", func() bool { return p.Stalled(window) != "" })
	if r := p.Stalled(window); !strings.Contains(r, "no frame completed for") || !strings.Contains(r, "health.stall 150ms") {
		t.Errorf("reason %q", r)
	}
	close(hang.gate)
	waitFor(t, "frames again", func() bool { return pub.count() > 0 })
	if r := p.Stalled(time.Hour); r != "" {
		t.Errorf("after a published frame: %q", r)
	}

	fail := NewPipeline(&failingModel{}, PipelineOptions{Thresh: 0.5})
	runPipeline(t, fail, opener(newFakeSource(1<<30, true)), newCollector())
	waitFor(t, "the failures to be reported", func() bool { return fail.Stalled(window) != "" })
	if r := fail.Stalled(window); !strings.Contains(r, "last frame error: engine: engine run timed out after 10s") || strings.Contains(r, "stack") {
		t.Errorf("reason %q, want the last error's first line", r)
	}

	paused := NewPipeline(&failingModel{}, PipelineOptions{Thresh: 0.5})
	yes := true
	if err := paused.Control(web.Control{Paused: &yes}, nil); err != nil {
		t.Fatal(err)
	}
	runPipeline(t, paused, opener(newFakeSource(1<<30, true)), newCollector())
	waitFor(t, "paused frames", func() bool { return paused.Stats().Paused > 20 })
	time.Sleep(window)
	if r := paused.Stalled(window); r != "" {
		t.Errorf("paused: %q", r)
	}
}

// TestAgentHealth: a hung engine makes the agent unhealthy (with the stall reason in
// Health, /api/status and /metrics) within health.stall, and healthy again once
// frames come out.
func TestAgentHealth(t *testing.T) {
	cfg := Defaults()
	cfg.Engine.Timeout.Duration, cfg.Health.Stall.Duration = 50*time.Millisecond, 200*time.Millisecond
	hang := &fakeModel{gate: make(chan struct{})}
	a := &Agent{cfg: cfg, start: time.Now(), pipe: NewPipeline(hang, PipelineOptions{Thresh: 0.5})}
	pub := newCollector()
	runPipeline(t, a.pipe, opener(newFakeSource(1<<30, true)), pub)
	waitFor(t, "unhealthy", func() bool { return a.Health() != nil })
	if st := a.Status(); st.Healthy || !strings.Contains(st.Health, "no frame completed") {
		t.Errorf("status healthy %v, health %q", st.Healthy, st.Health)
	}
	var m strings.Builder
	if err := a.WriteMetrics(&m); err != nil || !strings.Contains(m.String(), "pynq_agent_healthy 0") {
		t.Errorf("metrics (%v):\n%s", err, m.String())
	}
	close(hang.gate)
	waitFor(t, "healthy again", func() bool { return pub.count() > 0 && a.Health() == nil })
	if st := a.Status(); !st.Healthy || st.Health != "" {
		t.Errorf("after recovery: healthy %v, health %q", st.Healthy, st.Health)
	}
}

// jpegSource emits the same encoded frame again and again.
type jpegSource struct{ data []byte }

func (s jpegSource) Next(ctx context.Context) (*Capture, error) {
	return &Capture{Data: s.data, Time: time.Now()}, ctx.Err()
}
func (s jpegSource) Live() bool     { return true }
func (s jpegSource) Close() error   { return nil }
func (s jpegSource) String() string { return "jpeg" }

// TestJPEGSourceFeedsAsIs: a JPEG capture reaches the feed as its own bytes (no second
// encode on the board), except with Exif (a browser would rotate the picture, not the boxes).
func TestJPEGSourceFeedsAsIs(t *testing.T) {
	var b bytes.Buffer
	jpeg.Encode(&b, image.NewRGBA(image.Rect(0, 0, 32, 16)), nil)
	for _, c := range []struct {
		data []byte
		want bool
	}{{b.Bytes(), true}, {withExif(b.Bytes()), false}} {
		p := NewPipeline(&fakeModel{}, PipelineOptions{Thresh: 0.5})
		pub := newCollector()
		cancel := runPipeline(t, p, opener(jpegSource{c.data}), pub)
		waitFor(t, "a frame", func() bool { return pub.count() > 0 })
		cancel()
		f := pub.frames[0]
		if got := f.JPEG != nil; got != c.want || f.Image.Bounds().Dx() != 32 || (got && !bytes.Equal(f.JPEG, c.data)) {
			t.Errorf("JPEG passed as is: %v, want %v (picture %v)", got, c.want, f.Image.Bounds())
		}
	}
}

// TestAgentSourceFailure: a source that fails makes the agent not ready, with the error in
// /api/status and a 1 in pynq_agent_source_failing; health is untouched (a restart would
// not bring a camera back).
func TestAgentSourceFailure(t *testing.T) {
	cfg := Defaults()
	cfg.Source.Retry.Duration, cfg.Source.RetryMax.Duration = time.Millisecond, 4*time.Millisecond
	a := &Agent{cfg: cfg, start: time.Now(), pipe: NewPipeline(&fakeModel{}, PipelineOptions{Thresh: 0.5, Source: cfg.Source})}
	a.ready.Store(true)
	open := func(context.Context) (Source, error) { return nil, errors.New("open /dev/video0: no such device") }
	runPipeline(t, a.pipe, open, newCollector())
	waitFor(t, "the failure", func() bool { return a.pipe.SourceFailure() != "" })
	if a.Ready() || a.Health() != nil {
		t.Errorf("ready %v health %v", a.Ready(), a.Health())
	}
	if st := a.Status(); st.Ready || st.SourceError != "open /dev/video0: no such device" {
		t.Errorf("status ready %v source_error %q", st.Ready, st.SourceError)
	}
	var m strings.Builder
	if err := a.WriteMetrics(&m); err != nil || !strings.Contains(m.String(), "pynq_agent_source_failing 1") || !strings.Contains(m.String(), "pynq_agent_ready 0") {
		t.Errorf("metrics (%v):\n%s", err, m.String())
	}
}
