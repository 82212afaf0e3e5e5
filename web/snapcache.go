package web

import "sync"

// snapshotCache keeps the last snapshot JPEG of each kind (with or without boxes), so
// that any number of snapshot requests cost at most one encode per published frame:
// requests for the same frame wait for the one encode instead of starting their own.
type snapshotCache struct {
	mu      sync.Mutex
	entries [2]snapshotEntry // [0] plain, [1] with boxes
	encodes uint64
}

type snapshotEntry struct {
	frame *Frame
	jpeg  []byte
}

// get returns the JPEG of f, running encode only if this frame's is not cached yet.
func (c *snapshotCache) get(f *Frame, boxes bool, encode func() ([]byte, error)) ([]byte, error) {
	i := 0
	if boxes {
		i = 1
	}
	c.mu.Lock() // held through the encode: concurrent requests take its result
	defer c.mu.Unlock()
	if e := c.entries[i]; e.frame == f {
		return e.jpeg, nil
	}
	jpg, err := encode()
	if err != nil {
		return nil, err
	}
	c.encodes++
	c.entries[i] = snapshotEntry{frame: f, jpeg: jpg}
	return jpg, nil
}

// count is the number of encodes so far.
func (c *snapshotCache) count() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.encodes
}
