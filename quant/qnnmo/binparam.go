package qnnmo

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/fpgadetector/pynq-agent/quant"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// The parameter files of QNN-MO directories hold the engine's per-PE words
// (offload.PEWords) of one weight set each, little-endian.

// BinparamSkip is the file index of the first engine layer in QNN-MO's binparam
// directories (its layers json "binparam_skip": index 0 was the CPU's first layer).
const BinparamSkip = 1

func binparamName(dir string, weightIndex, pe int, kind string) string {
	return filepath.Join(dir, fmt.Sprintf("%d-%d-%s.bin", weightIndex+BinparamSkip, pe, kind))
}

// WriteBinparams writes the engine parameter files of a model's hidden layers into dir
// (QNN-MO's binparam layout, files numbered from [BinparamSkip]).
func WriteBinparams(m *quant.Model, dir string, lim offload.Limits) error {
	runs, err := offload.Plan(m, lim)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, r := range runs {
		p, err := offload.PEParams(m.Layers[r.Conv], r, lim)
		if err != nil {
			return fmt.Errorf("layer %d (%s): %w", r.Conv, m.Layers[r.Conv].Name, err)
		}
		for pe := range p.Weights {
			if err := os.WriteFile(binparamName(dir, r.WeightIndex, pe, "weights"), offload.WordBytes(p.Weights[pe]), 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(binparamName(dir, r.WeightIndex, pe, "thres"), offload.WordBytes(p.Thres[pe]), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// readBinparams fills the weights, thresholds and invert flags of the model's engine
// layers from a binparam directory. The layer shapes must be set.
func readBinparams(m *quant.Model, dir string, lim offload.Limits) error {
	return readBinparamsFS(osFS{}, m, dir, lim)
}

// readBinparamsFS is readBinparams on fsys.
func readBinparamsFS(fsys fs.FS, m *quant.Model, dir string, lim offload.Limits) error {
	runs, err := offload.PlanShapes(m, lim)
	if err != nil {
		return err
	}
	words := map[int][]uint64{} // engine words per layer, filled part by part
	for _, r := range runs {
		l := m.Layers[r.Conv]
		sf := offload.SynapseFold(l)
		nf := int(r.OFMCh) / lim.MaxPEConv
		all := words[r.Conv]
		if all == nil {
			all = make([]uint64, l.Conv.Filters*sf)
			words[r.Conv] = all
		}
		for pe := 0; pe < lim.MaxPEConv; pe++ {
			w, err := readWords(fsys, binparamName(dir, r.WeightIndex, pe, "weights"), nf*sf)
			if err != nil {
				return err
			}
			tname := binparamName(dir, r.WeightIndex, pe, "thres")
			t, err := readWords(fsys, tname, 2*nf)
			if err != nil {
				return err
			}
			for n := 0; n < nf; n++ {
				o := r.Part*int(r.OFMCh) + n*lim.MaxPEConv + pe
				copy(all[o*sf:(o+1)*sf], w[n*sf:(n+1)*sf])
				th, inv, err := offload.ParseThresholdEntry(t[2*n], t[2*n+1])
				if err != nil {
					return fmt.Errorf("%s entry %d: %w", tname, n, err)
				}
				l.Quant.Thresholds[o], l.Quant.Invert[o] = th, inv
			}
		}
		if r.Part == r.Parts-1 {
			if err := offload.SetWeightWords(l, all); err != nil {
				return fmt.Errorf("layer %d (%s): %w", r.Conv, l.Name, err)
			}
		}
	}
	return nil
}

func readWords(fsys fs.FS, path string, n int) ([]uint64, error) {
	data, err := fs.ReadFile(fsys, path)
	if err != nil {
		return nil, fmt.Errorf("read engine parameters: %w", err)
	}
	if len(data) != 8*n {
		return nil, fmt.Errorf("%s: %d bytes, the layer shape needs %d (%d words): parameter files and layer shapes disagree", path, len(data), 8*n, n)
	}
	w := make([]uint64, n)
	for i := range w {
		w[i] = binary.LittleEndian.Uint64(data[8*i:])
	}
	return w, nil
}
