//go:build !amd64 || purego

package qnnmo

// vectorDot reports whether this build and CPU run levels32: never outside amd64.
func vectorDot() bool { return false }

// levels32 is never called when vectorDot is false.
func levels32(x *uint64, w *uint64, sf int, total int, thr *int16, inv *int16) (p0, p1, p2 uint64) {
	panic("qnn: no vector kernel")
}

// levels32s is never called when vectorDot is false.
func levels32s(segs *seg32, nseg int, w *uint64, total int, thr *int16, inv *int16) (p0, p1, p2 uint64) {
	panic("qnn: no vector kernel")
}

// levelsRow32 is never called when vectorDot is false.
func levelsRow32(x *uint64, tot *int, n int, w *uint64, thr *int16, inv *int16, dst *uint64, dstStride int, half int) {
	panic("qnn: no vector kernel")
}

// popcntDot reports whether this build and CPU run dotPopcnt4: never outside amd64.
func popcntDot() bool { return false }

// dotPopcnt4 is never called when popcntDot is false.
func dotPopcnt4(x *uint64, w *uint64, sf int, d *[4]int64) { panic("qnn: no popcount kernel") }

// pextPlanes reports whether this build and CPU run recordPlanesPEXT: never outside
// amd64.
func pextPlanes() bool { return false }

// recordPlanesPEXT is never called when pextPlanes is false.
func recordPlanesPEXT(dst *uint64, dstStride int, src *byte, srcStride int, n int) {
	panic("qnn: no PEXT kernel")
}
