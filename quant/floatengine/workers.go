package floatengine

import (
	"runtime"
	"sync"
)

// Workers holds the goroutine count and the per-goroutine scratch buffers the kernels
// need, so that repeated calls allocate nothing big. A Workers is not safe for
// concurrent use.
type Workers struct {
	n     int
	bufs  [][]float32 // GEMM packing buffers, one per goroutine
	extra [][]float32 // other per-goroutine scratch (Winograd transforms), grown on demand
	tiles []tile
	wg    sync.WaitGroup
}

// NewWorkers returns workers for up to threads goroutines (0 or less: GOMAXPROCS).
func NewWorkers(threads int) *Workers {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	w := &Workers{n: threads, bufs: make([][]float32, threads), extra: make([][]float32, threads),
		tiles: make([]tile, 0, threads)}
	for i := range w.bufs {
		w.bufs[i] = make([]float32, bufFloats)
	}
	return w
}

// Threads is the number of goroutines the workers use.
func (w *Workers) Threads() int { return w.n }

// run calls f(0..tasks-1), tasks <= w.n, each on its own goroutine (task 0 on the caller's).
func (w *Workers) run(tasks int, f func(i int)) {
	if tasks <= 1 {
		if tasks == 1 {
			f(0)
		}
		return
	}
	w.wg.Add(tasks - 1)
	for i := 1; i < tasks; i++ {
		go func() {
			defer w.wg.Done()
			f(i)
		}()
	}
	f(0)
	w.wg.Wait()
}

// parallelFor splits [0, n) into at most w.n contiguous chunks and runs f on each.
func (w *Workers) parallelFor(n int, f func(lo, hi int)) {
	w.parallelForWorker(n, func(_, lo, hi int) { f(lo, hi) })
}

// parallelForWorker is parallelFor telling f which worker (0..w.n-1) runs the chunk.
func (w *Workers) parallelForWorker(n int, f func(worker, lo, hi int)) {
	chunks := min(w.n, n)
	if chunks <= 1 {
		if n > 0 {
			f(0, 0, n)
		}
		return
	}
	per := (n + chunks - 1) / chunks
	w.run((n+per-1)/per, func(i int) {
		f(i, i*per, min((i+1)*per, n))
	})
}

// scratch returns worker i's extra buffer with at least n floats; it allocates only
// when a layer needs more than any before.
func (w *Workers) scratch(i, n int) []float32 {
	if len(w.extra[i]) < n {
		w.extra[i] = make([]float32, n)
	}
	return w.extra[i][:n]
}
