package offload

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/fpgadetector/pynq-agent/quant"
)

// The parameter files of one engine weight set (one [Run]), per PE p = 0..MaxPEConv-1:
//
// {L}-{p}-weights.bin: little-endian uint64 words, NeuronFold*SynapseFold of them, where
// NeuronFold = OFMCh/MaxPEConv (output channels per PE) and SynapseFold = K*K*G with
// G = ceil(IFMCh/64) lane words per pixel. Word n*SynapseFold + (i*K+j)*G + s holds the
// weights of output channel o = Part*OFMCh + n*MaxPEConv + p for the kernel tap at engine
// row offset i, column offset j, input channels 64s .. 64s+63: bit b is input channel
// 64s+b, 1 means weight -1, 0 means +1 (Lanes past IFMCh are 0). The engine works on the
// transposed image (see the package doc), so in darknet's orientation the tap is
// kx = i, ky = j: IR weight W[o][c][ky][kx] is word (kx*K+ky)*G + c/64, bit c%64.
//
// {L}-{p}-thres.bin: two little-endian uint64 words per output channel of the PE, in the
// same order n: first the high half (bits 127..64), then the low half (bits 63..0) of a
// 128-bit entry (the engine shifts each word in from the bottom). Entry bits 16t..16t+15
// hold threshold T_t (t = 0..6) as a signed int16, bit 112 is the invert flag, bits
// 113..127 are 0. The engine's 16-bit signed accumulator acc = sum over inputs of
// (weight * level) gives level = count(acc >= T_t), and with the invert flag
// 7 - count(acc >= T_t) (each of the 3 output bits negated).

// SynapseFold is the number of weight words per output channel.
func SynapseFold(l *quant.Layer) int {
	return l.Conv.Size * l.Conv.Size * Lanes(l.In.C)
}

// Lanes is the number of 64-channel lane words that hold c channels.
func Lanes(c int) int { return (c + 63) / 64 }

// WeightWords packs an IR binary convolution into engine weight words, SynapseFold words
// per output channel in output-channel order (sign of each weight; 0 counts as +1 as in
// BipolarQuant).
func WeightWords(l *quant.Layer) []uint64 {
	c := l.Conv
	k, g, cin := c.Size, Lanes(l.In.C), l.In.C
	sf := k * k * g
	words := make([]uint64, c.Filters*sf)
	for o := 0; o < c.Filters; o++ {
		for ch := 0; ch < cin; ch++ {
			for ky := 0; ky < k; ky++ {
				for kx := 0; kx < k; kx++ {
					if c.Weights[((o*cin+ch)*k+ky)*k+kx] < 0 {
						words[o*sf+(kx*k+ky)*g+ch/64] |= 1 << (ch % 64)
					}
				}
			}
		}
	}
	return words
}

// SetWeightWords is the inverse of WeightWords: it fills the IR weights (+1/-1) from
// engine words, refusing set bits on Lanes past the input channels (the IR cannot hold
// them, so a re-export would differ).
func SetWeightWords(l *quant.Layer, words []uint64) error {
	c := l.Conv
	k, g, cin := c.Size, Lanes(l.In.C), l.In.C
	sf := k * k * g
	c.Weights = make([]float32, c.Filters*cin*k*k)
	for o := 0; o < c.Filters; o++ {
		for t := 0; t < k*k; t++ {
			kx, ky := t/k, t%k
			for s := 0; s < g; s++ {
				w := words[o*sf+t*g+s]
				for b := 0; b < 64; b++ {
					ch := s*64 + b
					neg := w>>b&1 == 1
					if ch >= cin {
						if neg {
							return fmt.Errorf("output channel %d, tap %d: weight bit set for padding lane %d (only %d input channels)", o, t, ch, cin)
						}
						continue
					}
					v := float32(1)
					if neg {
						v = -1
					}
					c.Weights[((o*cin+ch)*k+ky)*k+kx] = v
				}
			}
		}
	}
	return nil
}

const invertBit = 112 - 64 // the invert flag's bit in the high word

// ThresholdEntry packs one output channel's thresholds into the engine's 128-bit entry.
func ThresholdEntry(t []int32, invert bool) (hi, lo uint64, err error) {
	if len(t) != 7 {
		return 0, 0, fmt.Errorf("%d thresholds, the 3-bit engine takes 7", len(t))
	}
	for i, v := range t {
		if v < math.MinInt16 || v > math.MaxInt16 {
			return 0, 0, fmt.Errorf("threshold %d = %d does not fit the engine's int16", i, v)
		}
		f := uint64(uint16(int16(v)))
		if i < 4 {
			lo |= f << (16 * i)
		} else {
			hi |= f << (16 * (i - 4))
		}
	}
	if invert {
		hi |= 1 << invertBit
	}
	return hi, lo, nil
}

// ParseThresholdEntry unpacks a 128-bit threshold entry.
func ParseThresholdEntry(hi, lo uint64) (t []int32, invert bool, err error) {
	if hi>>(invertBit+1) != 0 {
		return nil, false, fmt.Errorf("threshold entry bits 113..127 are set (%#x): not a 3-bit threshold entry", hi>>(invertBit+1))
	}
	t = make([]int32, 7)
	for i := range t {
		var f uint64
		if i < 4 {
			f = lo >> (16 * i)
		} else {
			f = hi >> (16 * (i - 4))
		}
		t[i] = int32(int16(uint16(f)))
	}
	return t, hi>>invertBit&1 == 1, nil
}

// PEWords holds the per-PE words of one engine weight set.
type PEWords struct {
	Weights [][]uint64 // [PE] NeuronFold*SynapseFold words
	Thres   [][]uint64 // [PE] NeuronFold*2 words (high, low)
}

// PEParams lays out the weights and thresholds of one run per PE.
func PEParams(l *quant.Layer, r Run, lim Limits) (PEWords, error) {
	words := WeightWords(l)
	sf := SynapseFold(l)
	nf := int(r.OFMCh) / lim.MaxPEConv
	p := PEWords{Weights: make([][]uint64, lim.MaxPEConv), Thres: make([][]uint64, lim.MaxPEConv)}
	for pe := 0; pe < lim.MaxPEConv; pe++ {
		p.Weights[pe] = make([]uint64, 0, nf*sf)
		p.Thres[pe] = make([]uint64, 0, 2*nf)
		for n := 0; n < nf; n++ {
			o := r.Part*int(r.OFMCh) + n*lim.MaxPEConv + pe
			p.Weights[pe] = append(p.Weights[pe], words[o*sf:(o+1)*sf]...)
			hi, lo, err := ThresholdEntry(l.Quant.Thresholds[o], l.Quant.Invert[o])
			if err != nil {
				return p, fmt.Errorf("output channel %d: %w", o, err)
			}
			p.Thres[pe] = append(p.Thres[pe], hi, lo)
		}
	}
	return p, nil
}

func WordBytes(w []uint64) []byte {
	b := make([]byte, 8*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint64(b[8*i:], v)
	}
	return b
}

// LayerBuffers returns the two DDR weight buffers (in1 for memory channel 0, in2 for
// channel 1) that QNN-MO's host driver hands the engine for the weight-load run of one
// part of a hidden layer (doInit=1, layerType=1, KernelDim=k; registers 0x10 and 0x1C
// hold the buffers' physical addresses).
//
// Each buffer serves MaxPEConv/2 = 16 PEs (in1: PEs 0..15, in2: PEs 16..31) and holds
// 16*WMem + 16*TMem*2 little-endian uint64 words (WMem = k*k*64 = 576 and TMem = 8 for
// W1A3; 75776 bytes for k=3), the amount the engine streams in:
//
//	word q*WMem + w           (q = PE - 16*channel, w < WMem): that PE's weight file
//	                          word w, zero past the file's NeuronFold*SynapseFold words;
//	word 16*WMem + (q*TMem + n)*2 + h: threshold entry n of PE q, h=0 its high word, h=1
//	                          its low word (the thres file's words 2n, 2n+1), zero for
//	                          n >= NeuronFold.
//
// The engine stores PE q's words in that order into its weight memory (index
// n*SynapseFold + sf) and its threshold memory (index n, high word shifted in first).
func LayerBuffers(m *quant.Model, r Run, lim Limits) (w1, w2 []byte, err error) {
	if lim.MemChannels != 2 {
		return nil, nil, fmt.Errorf("engine has %d memory channels; LayerBuffers builds 2", lim.MemChannels)
	}
	if r.Conv < 0 || r.Conv >= len(m.Layers) || !IsEngineConv(m.Layers[r.Conv]) {
		return nil, nil, fmt.Errorf("run refers to layer %d, not a binary convolution", r.Conv)
	}
	p, err := PEParams(m.Layers[r.Conv], r, lim)
	if err != nil {
		return nil, nil, err
	}
	bufs := make([][]byte, 2)
	perCh := lim.MaxPEConv / 2
	wmem, tmem := lim.WMemWords(int(r.KernelDim)), lim.TMemEntries()
	for ch := range bufs {
		words := make([]uint64, perCh*(wmem+2*tmem))
		for q := 0; q < perCh; q++ {
			pe := ch*perCh + q
			if len(p.Weights[pe]) > wmem || len(p.Thres[pe]) > 2*tmem {
				return nil, nil, fmt.Errorf("layer %d: %d weight words per PE exceed the engine's %d", r.Conv, len(p.Weights[pe]), wmem)
			}
			copy(words[q*wmem:], p.Weights[pe])
			copy(words[perCh*wmem+q*tmem*2:], p.Thres[pe])
		}
		bufs[ch] = WordBytes(words)
	}
	return bufs[0], bufs[1], nil
}
