package sim

import (
	"encoding/binary"
	"testing"

	"github.com/fpgadetector/pynq-agent/dma"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// FuzzJamRegisters drives the engine model with arbitrary register values and DDR
// contents: it must compute or refuse (hang), never panic. Dimensions are taken modulo
// small bounds half the time so that runs also complete.
func FuzzJamRegisters(f *testing.F) {
	f.Add([]byte{1, 3, 0, 16, 64, 8, 10, 8, 2, 8, 4, 1, 0})         // conv 3x3 pad 1 with a 2/2 pool
	f.Add([]byte{1, 1, 0, 200, 32, 5, 5, 5, 1, 0, 0, 0, 0})         // 1x1 conv, no pool
	f.Add([]byte{0, 3, 0, 16, 64, 8, 10, 8, 2, 9, 8, 0, 0})         // 2/1 pool
	f.Add([]byte{1, 3, 1, 255, 255, 255, 255, 255, 7, 255, 255, 9}) // garbage
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 13 {
			return
		}
		mem, err := dma.NewSimMemory(dma.DefaultSimBase, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		ddr, _ := mem.Slice(mem.Base(), mem.Size())
		for i := range ddr {
			ddr[i] = data[i%len(data)] ^ byte(i>>8)
		}
		j := NewJam(mem, offload.W1A3, 1)
		small := data[12]&1 == 0
		reg := func(i int, bound uint32) uint32 {
			v := uint32(data[i])
			if !small {
				v |= binary.LittleEndian.Uint32(append(data[i:min(i+4, len(data))], 0, 0, 0, 0)) & 0xFFFF00
			}
			if small && bound > 0 {
				v %= bound
			}
			return v
		}
		a := jamArgs{
			in1: mem.Base(), in2: mem.Base() + 1<<19, out: mem.Base() + 1<<19,
			doInit: data[0]&2 != 0, layerType: uint32(data[0] & 1),
			k: reg(1, 4), stride: uint32(data[2] & 1), ifmCh: reg(3, 0), ofmCh: reg(4, 0),
			ifmDim: reg(5, 12), padded: reg(6, 14), ofmDim: reg(7, 14),
			poolIn: reg(9, 14), poolOut: reg(10, 14), poolStride: uint32(data[11] & 3),
		}
		if a.doInit {
			_ = j.loadWeights(a)
			return
		}
		_ = j.compute(a)
	})
}
