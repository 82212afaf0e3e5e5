package sim

import (
	"runtime"
	"sync/atomic"
	"time"
)

// crew runs the parallel sections of the engine model (a layer has two or three) on
// helper goroutines that stay on their thread between sections, looking for the next
// one and yielding the processor to anything else runnable, instead of parking: on a
// virtual machine a parked thread takes some 100 us to wake, the time of a whole small
// layer, and a frame has some 20 sections. A helper leaves after crewLinger without
// work, so an idle simulation costs nothing.
type crew struct {
	cur     atomic.Pointer[section]
	helpers atomic.Int32 // helpers alive
}

// crewLinger is how long a helper waits for the next section before it leaves.
const crewLinger = 5 * time.Millisecond

// section is one parallel run of f over rows 0..n-1, handed out in chunks.
type section struct {
	n, chunk int
	f        func(r0, r1 int)
	next     atomic.Int64 // first row not yet handed out
	left     atomic.Int64 // rows not yet finished
}

// run calls f over contiguous row ranges covering 0..n-1 on threads goroutines (this
// one and threads-1 helpers) and returns when all are done.
func (c *crew) run(n, threads int, f func(r0, r1 int)) {
	if threads <= 1 || n <= 1 {
		f(0, n)
		return
	}
	s := &section{n: n, chunk: max(1, n/(4*threads)), f: f}
	s.left.Store(int64(n))
	c.cur.Store(s)
	for c.helpers.Load() < int32(threads-1) {
		c.helpers.Add(1)
		go c.help()
	}
	s.work()
	for s.left.Load() != 0 { // helpers finish their last chunks
		runtime.Gosched() // (parking here would hand this goroutine to a helper's thread)
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
		s.left.Add(int64(r0 - r1))
	}
}

// help works on every new section until none comes for crewLinger.
func (c *crew) help() {
	defer c.helpers.Add(-1)
	var last *section
	idle := time.Now()
	for {
		if s := c.cur.Load(); s != last {
			last = s
			s.work()
			idle = time.Now()
			continue
		}
		if time.Since(idle) > crewLinger {
			return
		}
		runtime.Gosched()
	}
}
