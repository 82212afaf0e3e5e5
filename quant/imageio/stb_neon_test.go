package imageio

import (
	"bytes"
	"image"
	"math"
	"math/rand/v2"
	"testing"
)

// withoutNEON runs f with the Go loops.
func withoutNEON(f func()) {
	defer func(v bool) { haveNEON = v }(haveNEON)
	haveNEON = false
	f()
}

func needNEON(t *testing.T) {
	if !haveNEON {
		t.Skip("no NEON on this machine (the board's kernels run under scripts/test-arm.sh)")
	}
}

// On ARM the NEON IDCT gives idctSTB's samples: random coefficients of every size
// (including the int16 wrap of large products), sparse blocks and DC-only ones.
func TestIDCTSTBNEONEqualsGo(t *testing.T) {
	needNEON(t)
	rng := rand.New(rand.NewPCG(5, 5))
	for i := range 3000 {
		var coef, quant [64]int32
		last := 63
		if i%3 == 1 {
			last = rng.IntN(10)
		}
		for k, z := range jpegZigzag[:last+1] {
			quant[z] = int32(1 + rng.IntN(255))
			switch {
			case i%3 == 2 && k > 0: // DC only
			case i%5 == 0:
				coef[z] = int32(rng.IntN(4096)) - 2048
			default:
				coef[z] = int32(rng.IntN(64)) - 32
			}
		}
		for k := last + 1; k < 64; k++ {
			quant[jpegZigzag[k]] = int32(1 + rng.IntN(255))
		}
		const stride = 11
		want, got := make([]byte, 8*stride), make([]byte, 8*stride)
		c := coef
		withoutNEON(func() { idctSTB(&c, &quant, last, want, stride) })
		c = coef
		idctSTB(&c, &quant, last, got, stride)
		if !bytes.Equal(got, want) {
			t.Fatalf("block %d (coef %v quant %v):\nNEON %v\nGo   %v", i, coef, quant, got, want)
		}
	}
}

// On ARM the NEON colour conversion, chroma upsampling and planar conversion give the
// Go loops' values for all byte values, at widths that leave a tail.
func TestSTBRowsNEONEqualsGo(t *testing.T) {
	needNEON(t)
	rng := rand.New(rand.NewPCG(6, 6))
	for _, n := range []int{8, 9, 17, 64*8 + 5} {
		y, cb, cr := make([]byte, n), make([]byte, n), make([]byte, n)
		for i := range y {
			y[i], cb[i], cr[i] = byte(rng.IntN(256)), byte(i*5+rng.IntN(3)), byte(255-i*3)
		}
		want, got := make([]byte, 4*n), make([]byte, 4*n)
		withoutNEON(func() { stbYCbCrRow(want, y, cb, cr) })
		stbYCbCrRow(got, y, cb, cr)
		if !bytes.Equal(got, want) {
			t.Fatalf("YCbCr row of %d: NEON differs from Go", n)
		}
		wantHV, gotHV := make([]byte, 2*n), make([]byte, 2*n)
		withoutNEON(func() { stbHV2(wantHV, y, cb) })
		stbHV2(gotHV, y, cb)
		if !bytes.Equal(gotHV, wantHV) {
			t.Fatalf("HV2 of %d: NEON %v, Go %v", n, gotHV, wantHV)
		}
	}
	img := image.NewRGBA(image.Rect(0, 0, 8*7+3, 9))
	for i := range img.Pix {
		img.Pix[i] = byte(i) ^ byte(rng.IntN(256))
	}
	var want *Image
	withoutNEON(func() { want = FromRGBA(img) })
	got := FromRGBA(img)
	for i := range want.Data {
		if math.Float32bits(got.Data[i]) != math.Float32bits(want.Data[i]) {
			t.Fatalf("planar value %d: NEON %v, Go %v", i, got.Data[i], want.Data[i])
		}
	}
}
