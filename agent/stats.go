package agent

import (
	"fmt"
	"sync"
	"time"

	"github.com/fpgadetector/pynq-agent/quant/detector"
)

// ewmaAlpha weighs the newest sample of a moving average: about the last 10 frames count.
const ewmaAlpha = 0.1

// movingAvg is an exponentially weighted moving average plus the last sample.
type movingAvg struct {
	avg, last float64
	n         uint64
}

func (m *movingAvg) add(v float64) {
	if m.n == 0 {
		m.avg = v
	} else {
		m.avg += ewmaAlpha * (v - m.avg)
	}
	m.last = v
	m.n++
}

// rateMeter measures events per second over the last rateWindow events.
type rateMeter struct {
	times [rateWindow]time.Time
	n     int // events recorded, saturating at rateWindow
	next  int
}

const rateWindow = 16

// rateIdle is how long without events makes the rate read 0.
const rateIdle = 5 * time.Second

func (r *rateMeter) add(t time.Time) {
	r.times[r.next] = t
	r.next = (r.next + 1) % rateWindow
	r.n = min(r.n+1, rateWindow)
}

func (r *rateMeter) rate(now time.Time) float64 {
	if r.n < 2 {
		return 0
	}
	newest := r.times[(r.next+rateWindow-1)%rateWindow]
	oldest := r.times[(r.next+rateWindow-r.n)%rateWindow]
	span := newest.Sub(oldest).Seconds()
	// A gap since the last event longer than the usual interval lowers the rate rather
	// than freezing it; a long idle (ten intervals, and at least rateIdle) reads 0. The
	// board's engine can take seconds per frame, so "long" is relative.
	avg := span / float64(r.n-1)
	gap := now.Sub(newest).Seconds()
	if gap > max(10*avg, rateIdle.Seconds()) {
		return 0
	}
	if gap > avg {
		span += gap - avg
	}
	if span <= 0 {
		return 0
	}
	return float64(r.n-1) / span
}

// Stage names, in pipeline order: the detector's (see quant/detector) between the
// pipeline's decode and publish. Float models have no first and last stage (engine is
// their whole network, on the CPU).
const (
	StageDecode    = "decode" // JPEG/PNG/YUYV -> RGB
	StageLetterbox = detector.StageLetterbox
	StageFirst     = detector.StageFirst
	StageEngine    = detector.StageEngine
	StageLast      = detector.StageLast
	StageNMS       = detector.StageNMS
	StagePublish   = "publish" // hand-off to the feed

	// Off-CPU time of a pipeline thread during its work on the frame (kernel
	// telemetry, when loaded): not a stage of its own but the part of the stages that
	// thread ran in which it was switched out (preempted or blocked).
	StageOffCPUPrepare = "offcpu_prepare"
	StageOffCPUEngine  = "offcpu_engine"
)

// stats collects the pipeline's counters and timings; one mutex, taken a few times per
// frame, is far below the cost of any stage.
type stats struct {
	mu        sync.Mutex
	stages    map[string]*movingAvg
	order     []string
	latency   movingAvg
	in, out   rateMeter
	framesIn  uint64 // accepted from the source
	framesOut uint64 // published
	dropped   uint64 // dropped from full queues (oldest first)
	paused    uint64 // discarded while paused
	errors    uint64 // frames that failed in a stage
	detected  uint64 // detections published
	srcErrors uint64 // source failures (each retried)
	srcState  string
	srcErr    string

	// pendingSince is when the pipeline took the first frame since the last one it
	// published (zero when none is pending); pendingN counts them. A pending run
	// older than the health stall window means frames go in and none come out.
	pendingSince time.Time
	pendingN     uint64
	lastErr      string // stage and error of the last failed frame
}

func newStats() *stats { return &stats{stages: map[string]*movingAvg{}} }

func (s *stats) stage(name string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.stages[name]
	if !ok {
		m = &movingAvg{}
		s.stages[name] = m
		s.order = append(s.order, name)
	}
	m.add(float64(d) / float64(time.Millisecond))
}

func (s *stats) frameIn(t time.Time) {
	s.mu.Lock()
	s.framesIn++
	s.in.add(t)
	s.mu.Unlock()
}

// taken records that the pipeline started working on a frame.
func (s *stats) taken(t time.Time) {
	s.mu.Lock()
	if s.pendingSince.IsZero() {
		s.pendingSince = t
	}
	s.pendingN++
	s.mu.Unlock()
}

// stalled describes frames that went in without one coming out for longer than
// window; "" when the pipeline is not stalled.
func (s *stats) stalled(now time.Time, window time.Duration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pendingSince.IsZero() || window <= 0 || now.Sub(s.pendingSince) < window {
		return ""
	}
	r := fmt.Sprintf("no frame completed for %s while the pipeline took %d (health.stall %s)",
		now.Sub(s.pendingSince).Round(time.Second), s.pendingN, window)
	if s.lastErr != "" {
		r += "; last frame error: " + s.lastErr
	}
	return r
}

func (s *stats) frameOut(t time.Time, latency time.Duration, dets int) {
	s.mu.Lock()
	s.pendingSince, s.pendingN = time.Time{}, 0
	s.framesOut++
	s.detected += uint64(dets)
	s.out.add(t)
	s.latency.add(float64(latency) / float64(time.Millisecond))
	s.mu.Unlock()
}

func (s *stats) count(p *uint64) {
	s.mu.Lock()
	*p++
	s.mu.Unlock()
}

func (s *stats) source(state string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srcState = state
	if err != nil {
		s.srcErr = err.Error()
		s.srcErrors++
	} else if state == "running" {
		s.srcErr = ""
	}
}

// sourceFailure is the source's last error while it is failing (being reopened), else "".
func (s *stats) sourceFailure() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srcState != "retrying" {
		return ""
	}
	return s.srcErr
}

// Snapshot is a consistent copy of the pipeline's figures.
type Snapshot struct {
	FramesIn, FramesOut, Dropped, Paused, Errors, Detections, SourceErrors uint64

	FPSIn, FPSOut float64
	StagesMS      map[string]float64 // moving averages
	LastMS        map[string]float64 // last frame
	StageOrder    []string
	LatencyMS     float64
	LastLatencyMS float64
	SourceState   string
	SourceError   string
}

func (s *stats) snapshot(now time.Time) Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := Snapshot{
		FramesIn: s.framesIn, FramesOut: s.framesOut, Dropped: s.dropped, Paused: s.paused,
		Errors: s.errors, Detections: s.detected, SourceErrors: s.srcErrors,
		FPSIn: s.in.rate(now), FPSOut: s.out.rate(now),
		StagesMS: map[string]float64{}, LastMS: map[string]float64{},
		StageOrder: append([]string(nil), s.order...),
		LatencyMS:  s.latency.avg, LastLatencyMS: s.latency.last,
		SourceState: s.srcState, SourceError: s.srcErr,
	}
	for k, m := range s.stages {
		sn.StagesMS[k], sn.LastMS[k] = m.avg, m.last
	}
	return sn
}
