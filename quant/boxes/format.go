package boxes

import (
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/fpgadetector/pynq-agent/quant/dataset"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// LoadNames reads a names file (dataset.ReadNames: one class per line).
func LoadNames(path string) ([]string, error) { return dataset.ReadNames(path) }

// WriteDarknet prints objects as darknet's detector does: "name: NN%" per line, the
// percentage rounded by printf's %.0f (half to even on the exact binary value).
func WriteDarknet(w io.Writer, objs []Detection) error {
	for _, o := range objs {
		if _, err := fmt.Fprintf(w, "%s: %.0f%%\n", o.Name, float64(o.Score)*100); err != nil {
			return err
		}
	}
	return nil
}

// JSONDetection is one object in the JSON output.
type JSONDetection struct {
	Class   string     `json:"class"`
	ClassID int        `json:"class_id"`
	Score   float64    `json:"score"`
	Box     [4]float64 `json:"box"` // x1, y1, x2, y2 pixels
}

// JSONImage is one line of `pynqctl detect --json`.
type JSONImage struct {
	Image      string          `json:"image"`
	Width      int             `json:"width"`
	Height     int             `json:"height"`
	Detections []JSONDetection `json:"detections"`
}

// NewJSONImage converts objects (from [Objects]) for one image; scores are rounded to 4
// decimals and boxes to 0.1 pixel to keep lines short.
func NewJSONImage(image string, width, height int, objs []Detection) JSONImage {
	out := JSONImage{Image: image, Width: width, Height: height, Detections: []JSONDetection{}}
	for _, o := range objs {
		d := JSONDetection{Class: o.Name, ClassID: o.Class, Score: round(float64(o.Score), 1e4)}
		for i, v := range o.Box {
			d.Box[i] = round(float64(v), 10)
		}
		out.Detections = append(out.Detections, d)
	}
	return out
}

func round(v, scale float64) float64 { return math.Round(v*scale) / scale }

// WriteJSON writes one JSON line for an image.
func WriteJSON(w io.Writer, img JSONImage) error {
	b, err := json.Marshal(img)
	if err != nil {
		return fmt.Errorf("encode detections: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Labels turns objects into boxes to draw, captioned "name NN%"; classes is the model's
// class count (it spreads darknet's colours). Objects of one candidate (same box, as
// [Objects] emits them) share one box and caption, "dog 61%, bicycle 43%", as darknet
// draws them, coloured by the first class.
func Labels(objs []Detection, classes int) []imageio.Label {
	var out []imageio.Label
	for _, o := range objs {
		text := fmt.Sprintf("%s %.0f%%", o.Name, float64(o.Score)*100)
		if n := len(out); n > 0 && out[n-1].Box == o.Box {
			out[n-1].Text += ", " + text
			continue
		}
		out = append(out, imageio.Label{Box: o.Box, Class: o.Class, Classes: classes, Text: text})
	}
	return out
}
