package sim

import (
	"sync/atomic"
	"time"
)

// crew runs the parallel sections of the engine model (a layer has two or three) on
// helper goroutines. Between sections a helper busy-waits for crewSpin before it parks:
// on a virtual machine a parked thread takes some 100 us to wake, the time of a whole
// small layer, and the next section of a frame usually comes sooner than crewSpin. A
// parked helper leaves after crewLinger without work, so an idle simulation costs
// nothing. Waits never yield in a loop (runtime.Gosched): a goroutine that keeps
// yielding keeps its processor from stealing work, the agent's other stages included.
//
// A helper holds the crew only, never a finished section (whose closure holds the
// engine model and its buffers): an abandoned model is garbage at once, its helpers
// leave after crewLinger.
type crew struct {
	cur     atomic.Pointer[section] // the section in progress, nil between sections
	gen     atomic.Uint64           // sections started (one goroutine starts them: the model's compute)
	helpers atomic.Int32            // helpers alive
	wake    chan struct{}           // parked helpers wait here for a section
}

// newCrew returns a crew for up to threads goroutines.
func newCrew(threads int) *crew { return &crew{wake: make(chan struct{}, max(threads, 1))} }

const (
	crewSpin   = 500 * time.Microsecond // busy wait for the next section, or for helpers
	crewLinger = time.Second            // a parked helper leaves after this without work
)

// section is one parallel run of f over rows 0..n-1, handed out in chunks.
type section struct {
	gen      uint64
	n, chunk int
	f        func(r0, r1 int)
	next     atomic.Int64  // first row not yet handed out
	left     atomic.Int64  // rows not yet finished
	done     chan struct{} // closed when the last row is finished
}

// run calls f over contiguous row ranges covering 0..n-1 on threads goroutines (this
// one and threads-1 helpers) and returns when all are done.
func (c *crew) run(n, threads int, f func(r0, r1 int)) {
	if threads <= 1 || n <= 1 {
		f(0, n)
		return
	}
	s := &section{gen: c.gen.Load() + 1, n: n, chunk: max(1, n/(4*threads)), f: f, done: make(chan struct{})}
	s.left.Store(int64(n))
	c.cur.Store(s)
	c.gen.Store(s.gen) // after cur: a helper that sees the new generation finds its section
	defer c.cur.CompareAndSwap(s, nil)
	for c.helpers.Load() < int32(threads-1) {
		c.helpers.Add(1)
		go c.help()
	}
	for i := 1; i < threads; i++ {
		select {
		case c.wake <- struct{}{}: // a parked helper takes it; a spinning one sees gen
		default:
		}
	}
	s.work()
	if !spinUntil(func() bool { return s.left.Load() == 0 }) {
		<-s.done
	}
}

// work runs chunks of s until none is left.
func (s *section) work() {
	for {
		r1 := int(s.next.Add(int64(s.chunk)))
		r0 := r1 - s.chunk
		if r0 >= s.n {
			return
		}
		r1 = min(r1, s.n)
		s.f(r0, r1)
		if s.left.Add(int64(r0-r1)) == 0 {
			close(s.done)
		}
	}
}

// help works on every new section; it leaves after crewLinger without one.
func (c *crew) help() {
	defer c.helpers.Add(-1)
	var last uint64 // sections up to this one are done or being done
	for {
		g := c.gen.Load()
		if s := c.cur.Load(); s != nil && s.gen > last {
			last = s.gen
			s.work()
			continue
		}
		last = max(last, g) // (a section that started in between is left to the others)
		if spinUntil(func() bool { return c.gen.Load() != last }) {
			continue
		}
		select {
		case <-c.wake:
		case <-time.After(crewLinger):
			return
		}
	}
}

// spinUntil busy-waits up to crewSpin for cond and reports whether it came true.
func spinUntil(cond func() bool) bool {
	end := time.Now().Add(crewSpin)
	for i := 0; ; i++ {
		if cond() {
			return true
		}
		if i%64 == 0 && time.Now().After(end) {
			return false
		}
	}
}
