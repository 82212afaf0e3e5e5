package offload

import (
	"encoding/json"
	"fmt"
)

// Limits are the synthesis parameters of the offload engine, as its overlay json
// (W1A3-overlay.json, "parameters") lists them.
type Limits struct {
	MaxK          int `json:"MAX_K"`
	MaxIFMCh      int `json:"MAX_IFM_CH"`
	MaxIFMDim     int `json:"MAX_IFM_DIM"`
	MaxOFMCh      int `json:"MAX_OFM_CH"`
	MaxOFMDim     int `json:"MAX_OFM_DIM"`
	MaxPoolSize   int `json:"MAX_POOL_SIZE"`
	MaxPoolStride int `json:"MAX_POOL_STRIDE"`
	MaxSIMD       int `json:"MAX_SIMD"`
	MaxPEConv     int `json:"MAX_PE_CONV"`
	MemChannels   int `json:"MEM_CHANNELS"`
	ActBits       int `json:"ACTIVATION_BITS"`
	WeightBits    int `json:"WEIGHTS_BITS"`
	ThresholdBits int `json:"THRESHOLDS_BITS"`
	MACCBits      int `json:"MACC_BITS"`
	DataWidth     int `json:"DATAWIDTH"`
}

// W1A3 is the published PYNQ-Z1/Z2 W1A3 overlay. The code over this package is
// written for these values (64 SIMD lanes = one uint64, 3-bit activations, 128-bit
// thresholds); [Limits.Check] refuses others.
var W1A3 = Limits{
	MaxK: 3, MaxIFMCh: 512, MaxIFMDim: 210, MaxOFMCh: 256, MaxOFMDim: 210,
	MaxPoolSize: 2, MaxPoolStride: 2, MaxSIMD: 64, MaxPEConv: 32, MemChannels: 2,
	ActBits: 3, WeightBits: 1, ThresholdBits: 128, MACCBits: 16, DataWidth: 64,
}

// ParseLimits reads the "parameters" object of overlay json data; errors name path.
func ParseLimits(data []byte, path string) (Limits, error) {
	var doc struct {
		Parameters *Limits `json:"parameters"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return Limits{}, fmt.Errorf("%s: %w", path, err)
	}
	if doc.Parameters == nil {
		return Limits{}, fmt.Errorf("%s: no \"parameters\" object (not an overlay json)", path)
	}
	if err := doc.Parameters.Check(); err != nil {
		return Limits{}, fmt.Errorf("%s: %w", path, err)
	}
	return *doc.Parameters, nil
}

// Check reports whether the project's code can drive an engine with these limits.
func (l Limits) Check() error {
	if l.MaxSIMD != 64 || l.ActBits != 3 || l.WeightBits != 1 || l.ThresholdBits != 128 || l.DataWidth != 64 || l.MACCBits != 16 {
		return fmt.Errorf("engine limits SIMD %d, activation bits %d, weight bits %d, threshold bits %d, data width %d, MAC bits %d: only the W1A3 engine (64, 3, 1, 128, 64, 16) is supported",
			l.MaxSIMD, l.ActBits, l.WeightBits, l.ThresholdBits, l.DataWidth, l.MACCBits)
	}
	if l.MaxPEConv <= 0 || l.MemChannels <= 0 || l.MaxPEConv%l.MemChannels != 0 || l.MaxOFMCh%l.MaxPEConv != 0 || l.MaxIFMCh%l.MaxSIMD != 0 {
		return fmt.Errorf("engine limits PE %d, memory channels %d, max OFM %d, max IFM %d are inconsistent", l.MaxPEConv, l.MemChannels, l.MaxOFMCh, l.MaxIFMCh)
	}
	return nil
}

// RecordBytes is the size of one pixel's activation record in engine DDR buffers:
// MaxIFMCh channels of ActBits bits (192 bytes for W1A3), whatever the layer's channels.
func (l Limits) RecordBytes() int { return l.MaxIFMCh * l.ActBits / 8 }

// WMemWords is the number of 64-bit weight words per PE that a weight load of a layer
// with kernel k transfers: k*k*MaxOFMCh*MaxIFMCh/(MaxPEConv*MaxSIMD) (576 for k=3).
func (l Limits) WMemWords(k int) int {
	return k * k * l.MaxOFMCh * l.MaxIFMCh / (l.MaxPEConv * l.MaxSIMD)
}

// TMemEntries is the number of 128-bit threshold entries per PE (MaxOFMCh/MaxPEConv = 8).
func (l Limits) TMemEntries() int { return l.MaxOFMCh / l.MaxPEConv }
