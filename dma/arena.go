package dma

import (
	"fmt"
	"slices"
	"sync"
)

// arena is a first-fit sub-allocator over the offsets [0, size) of one contiguous
// region: the u-dma-buf and simulated allocators carve their buffers out of it. Blocks
// start on a multiple of align and span a multiple of align, so neighbouring buffers
// never share a cache line (align >= the line size) and cache maintenance on one
// cannot touch another.
type arena struct {
	mu    sync.Mutex
	size  uint64
	align uint64
	free  []span          // sorted by off, never adjacent (merged on release)
	used  map[uint64]span // by off
}

type span struct{ off, len uint64 }

func newArena(size, align uint64) (*arena, error) {
	if !isPowerOfTwo(align) {
		return nil, fmt.Errorf("alignment %d is not a power of two", align)
	}
	a := &arena{size: size, align: align, used: map[uint64]span{}}
	if size >= align {
		a.free = []span{{0, size &^ (align - 1)}}
	}
	return a, nil
}

// alloc reserves n bytes and returns the block's offset; ok is false when no free
// block is large enough.
func (a *arena) alloc(n uint64) (off uint64, ok bool) {
	need := alignUp(max(n, 1), a.align)
	if need < n { // overflow
		return 0, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, f := range a.free {
		if f.len < need {
			continue
		}
		if f.len == need {
			a.free = slices.Delete(a.free, i, i+1)
		} else {
			a.free[i] = span{f.off + need, f.len - need}
		}
		a.used[f.off] = span{f.off, need}
		return f.off, true
	}
	return 0, false
}

// release returns the block at off to the free list, merging with its neighbours.
func (a *arena) release(off uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.used[off]
	if !ok {
		return fmt.Errorf("release offset 0x%X: %w", off, ErrClosed)
	}
	delete(a.used, off)
	i, _ := slices.BinarySearchFunc(a.free, s.off, func(f span, off uint64) int {
		switch {
		case f.off < off:
			return -1
		case f.off > off:
			return 1
		}
		return 0
	})
	a.free = slices.Insert(a.free, i, s)
	if i+1 < len(a.free) && a.free[i].off+a.free[i].len == a.free[i+1].off {
		a.free[i].len += a.free[i+1].len
		a.free = slices.Delete(a.free, i+1, i+2)
	}
	if i > 0 && a.free[i-1].off+a.free[i-1].len == a.free[i].off {
		a.free[i-1].len += a.free[i].len
		a.free = slices.Delete(a.free, i, i+1)
	}
	return nil
}

// stats reports the free bytes and the largest free block.
func (a *arena) stats() (free, largest uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range a.free {
		free += f.len
		largest = max(largest, f.len)
	}
	return free, largest
}

// inUse is the number of live blocks.
func (a *arena) inUse() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.used)
}
