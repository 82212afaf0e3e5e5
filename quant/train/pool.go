package train

import (
	"math"

	"github.com/fpgadetector/pynq-agent/quant"
)

// poolLayer is darknet's max pool: windows start at -Pad/2 (padding reads as -inf);
// the backward pass routes each output delta to the input that won.
type poolLayer struct {
	l   *quant.Layer
	idx []int32 // per output: winning input index within its image, -1 if none
}

func (p *poolLayer) forward(n *Net, in, out []float32, train bool) {
	is, os := p.l.In, p.l.Out
	if len(p.idx) != len(out) {
		p.idx = make([]int32, len(out))
	}
	size, stride, off := p.l.Pool.Size, p.l.Pool.Stride, -p.l.Pool.Pad/2
	n.parallelRange(n.Batch*os.C, func(lo, hi int) {
		for pc := lo; pc < hi; pc++ {
			b, c := pc/os.C, pc%os.C
			inBase := b*is.Size() + c*is.H*is.W
			outBase := pc * os.H * os.W
			for y := 0; y < os.H; y++ {
				for x := 0; x < os.W; x++ {
					best, bi := float32(-math.MaxFloat32), int32(-1)
					for ky := 0; ky < size; ky++ {
						iy := off + y*stride + ky
						if iy < 0 || iy >= is.H {
							continue
						}
						for kx := 0; kx < size; kx++ {
							ix := off + x*stride + kx
							if ix < 0 || ix >= is.W {
								continue
							}
							if v := in[inBase+iy*is.W+ix]; v > best {
								best, bi = v, int32(inBase-b*is.Size()+iy*is.W+ix)
							}
						}
					}
					out[outBase+y*os.W+x] = best
					p.idx[outBase+y*os.W+x] = bi
				}
			}
		}
	})
}

func (p *poolLayer) backward(n *Net, in, out, delta, inDelta []float32) {
	if inDelta == nil {
		return
	}
	isz, osz := p.l.In.Size(), p.l.Out.Size()
	// Windows overlap (stride < size), so images, not channels, are split over goroutines.
	n.parallelRange(n.Batch, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			id := inDelta[b*isz : (b+1)*isz]
			for i, d := range delta[b*osz : (b+1)*osz] {
				if k := p.idx[b*osz+i]; k >= 0 {
					id[k] += d
				}
			}
		}
	})
}
