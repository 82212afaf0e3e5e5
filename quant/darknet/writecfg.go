package darknet

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/fpgadetector/pynq-agent/quant"
)

// WriteCfg writes m as a darknet cfg that ParseCfg reads back to the same model (up to
// what a cfg cannot hold: layer names, quantization annotations, weights, and BN epsilons
// other than the dialect's). Darknet layers read the previous layer unless they are a
// route or shortcut, so every other layer must have Inputs == [index-1]. An AlexeyAB model
// is marked with AlexeyAB-only keys (scale_x_y, or optimized_memory=0 in [net]) so that
// auto-detection reads it back as AlexeyAB; any other dialect is written pjreddie style.
func WriteCfg(w io.Writer, m *quant.Model) error {
	if err := m.InferShapes(); err != nil {
		return fmt.Errorf("write darknet cfg: model: %w", err)
	}
	bw := bufio.NewWriter(w)
	ab := m.Dialect == quant.DialectAlexeyAB
	fmt.Fprintf(bw, "# %s: written by pynq-agent's darknet exporter", strings.Join(strings.Fields(m.Name), " "))
	if ab {
		fmt.Fprint(bw, " (AlexeyAB darknet)")
	}
	fmt.Fprintf(bw, "\n[net]\nbatch=1\nsubdivisions=1\nwidth=%d\nheight=%d\nchannels=%d\n", m.Input.W, m.Input.H, m.Input.C)
	if ab && !hasYolo(m) {
		fmt.Fprint(bw, "optimized_memory=0\n")
	}
	for i, l := range m.Layers {
		if err := writeLayer(bw, i, l, ab); err != nil {
			return fmt.Errorf("write darknet cfg: layer %d (%s): %w", i, l.Name, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write darknet cfg: %w", err)
	}
	return nil
}

func hasYolo(m *quant.Model) bool {
	for _, l := range m.Layers {
		if l.Kind == quant.KindYolo {
			return true
		}
	}
	return false
}

func writeLayer(w *bufio.Writer, i int, l *quant.Layer, ab bool) error {
	chained := len(l.Inputs) == 1 && l.Inputs[0] == i-1
	if !chained && l.Kind != quant.KindRoute && l.Kind != quant.KindShortcut {
		return fmt.Errorf("a darknet %s reads the previous layer, this one reads %v (insert a route)", l.Kind, l.Inputs)
	}
	fmt.Fprintf(w, "\n# %d %s\n", i, l.Name)
	switch l.Kind {
	case quant.KindConv:
		writeConv(w, l.Conv)
	case quant.KindMaxPool:
		fmt.Fprintf(w, "[maxpool]\nsize=%d\nstride=%d\npadding=%d\n", l.Pool.Size, l.Pool.Stride, l.Pool.Pad)
	case quant.KindRoute:
		refs, err := relative(i, l.Inputs)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "[route]\nlayers=%s\n", refs)
		if r := l.Route; r.Groups > 1 {
			fmt.Fprintf(w, "groups=%d\ngroup_id=%d\n", r.Groups, r.GroupID)
		}
	case quant.KindShortcut:
		if len(l.Inputs) != 2 || l.Inputs[0] != i-1 {
			return fmt.Errorf("a darknet shortcut adds one layer to the previous one, this one reads %v", l.Inputs)
		}
		from, err := relative(i, l.Inputs[1:])
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "[shortcut]\nfrom=%s\nactivation=%s\n", from, l.Shortcut.Activation)
	case quant.KindUpsample:
		fmt.Fprintf(w, "[upsample]\nstride=%d\n", l.Upsample.Stride)
		if l.Upsample.Scale != 1 {
			fmt.Fprintf(w, "scale=%s\n", ftoa(l.Upsample.Scale))
		}
	case quant.KindDropout:
		fmt.Fprint(w, "[dropout]\n")
	case quant.KindRegion:
		writeRegion(w, l.Head)
	case quant.KindYolo:
		writeYolo(w, l.Head, ab)
	default:
		return fmt.Errorf("darknet has no %q layer", l.Kind)
	}
	return nil
}

func writeConv(w *bufio.Writer, c *quant.Conv) {
	fmt.Fprint(w, "[convolutional]\n")
	if c.BN != nil {
		fmt.Fprint(w, "batch_normalize=1\n")
	}
	fmt.Fprintf(w, "filters=%d\nsize=%d\nstride=%d\n", c.Filters, c.Size, c.Stride)
	if c.Pad == c.Size/2 && c.Pad > 0 {
		fmt.Fprint(w, "pad=1\n")
	} else {
		fmt.Fprintf(w, "padding=%d\n", c.Pad)
	}
	if c.Groups > 1 {
		fmt.Fprintf(w, "groups=%d\n", c.Groups)
	}
	if c.Binary {
		fmt.Fprint(w, "binary=1\n")
	}
	if c.XNOR {
		fmt.Fprint(w, "xnor=1\n")
	}
	fmt.Fprintf(w, "activation=%s\n", c.Activation)
}

func writeRegion(w *bufio.Writer, h *quant.Head) {
	fmt.Fprintf(w, "[region]\nanchors=%s\nclasses=%d\ncoords=%d\nnum=%d\n", ftoas(h.Anchors[:2*h.Num]), h.Classes, h.Coords, h.Num)
	if h.Softmax {
		fmt.Fprint(w, "softmax=1\n")
	}
}

func writeYolo(w *bufio.Writer, h *quant.Head, ab bool) {
	mask := make([]string, len(h.Mask))
	for i, k := range h.Mask {
		mask[i] = strconv.Itoa(k)
	}
	fmt.Fprintf(w, "[yolo]\nmask=%s\nanchors=%s\nclasses=%d\nnum=%d\n", strings.Join(mask, ","), ftoas(h.Anchors), h.Classes, len(h.Anchors)/2)
	if ab || h.ScaleXY != 1 {
		fmt.Fprintf(w, "scale_x_y=%s\n", ftoa(h.ScaleXY))
	}
}

// relative writes absolute layer indices as darknet's negative offsets from layer i.
func relative(i int, in []int) (string, error) {
	parts := make([]string, len(in))
	for k, v := range in {
		if v < 0 || v >= i {
			return "", fmt.Errorf("reads %d: darknet routes and shortcuts read earlier layers, not the network input", v)
		}
		parts[k] = strconv.Itoa(v - i)
	}
	return strings.Join(parts, ","), nil
}

func ftoa(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }

func ftoas(v []float32) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = ftoa(x)
	}
	return strings.Join(parts, ",")
}
