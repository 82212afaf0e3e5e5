package boardverify

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/fpgadetector/pynq-agent/quant/mapeval"
)

// Report is the JSON report.
type Report struct {
	Board      string         `json:"board"`
	Model      string         `json:"model"`
	Dataset    string         `json:"dataset"`
	Images     int            `json:"images"`
	Thresh     float32        `json:"thresh"`
	Decoder    string         `json:"decoder"`
	Match      bool           `json:"match"`
	Outputs    OutputsCheck   `json:"engine_outputs"`
	Detections DetectionCheck `json:"detections"`
	Accuracy   AccuracyCheck  `json:"accuracy"`
	Timing     Timing         `json:"timing"`
	PerImage   []ImageCheck   `json:"per_image"`
	Feed       string         `json:"feed_during_verification"`
}

type OutputsCheck struct {
	Match      bool           `json:"match"`
	Mismatched int            `json:"mismatched_images"`
	First      *LayerMismatch `json:"first_mismatch,omitempty"`
	Localized  []LayerDigests `json:"layers,omitempty"` // the first mismatching image's layers
}

// LayerMismatch locates the first difference of the first mismatching image.
type LayerMismatch struct {
	Image string `json:"image"`
	// Stage is "input" when the packed engine inputs already differ (decode, letterbox
	// or first layer), else "engine".
	Stage     string `json:"stage"`
	Layer     int    `json:"layer"` // engine layer index (0 = first engine layer), -1 for input
	LayerName string `json:"layer_name,omitempty"`
	Channel   int    `json:"channel"`
	Y         int    `json:"y"`
	X         int    `json:"x"`
	Board     uint8  `json:"board_level"`
	Host      uint8  `json:"host_level"`
	// Channels lists every differing channel of that layer (up to 32); Values counts
	// the differing levels.
	Channels []int `json:"channels"`
	Values   int   `json:"values"`
}

type LayerDigests struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	Board string `json:"board_sha256"`
	Host  string `json:"host_sha256"`
	Match bool   `json:"match"`
}

type DetectionCheck struct {
	Match      bool   `json:"match"`
	Mismatched int    `json:"mismatched_images"`
	First      string `json:"first_mismatch,omitempty"`
}

type AccuracyCheck struct {
	Match bool            `json:"match"` // board and host mAP and every class AP equal
	Board *mapeval.Result `json:"board"`
	Host  *mapeval.Result `json:"host"`
	Float *mapeval.Result `json:"float,omitempty"`
}

type Timing struct {
	Seconds         float64 `json:"seconds"`
	ImagesPerSecond float64 `json:"images_per_second"`
	BoardEngineMS   float64 `json:"board_engine_ms_mean"`
	LocalizeSeconds float64 `json:"localize_seconds,omitempty"`
}

type ImageCheck struct {
	ID           string `json:"id"`
	InputMatch   bool   `json:"input_match"`
	OutputBoard  string `json:"output_sha256_board"`
	OutputHost   string `json:"output_sha256_host"`
	OutputMatch  bool   `json:"output_match"`
	Detections   int    `json:"detections"`
	DetectsMatch bool   `json:"detections_match"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("verify: --output: %w", err)
	}
	return nil
}

func yesNo(ok bool) string {
	if ok {
		return "match"
	}
	return "DIFFER"
}

// Print writes the report for a person.
func (r *Report) Print(out io.Writer) {
	fmt.Fprintf(out, "verify %s against the host reference: %d images of %s (decoder %s, thresh %g)\n",
		r.Board, r.Images, r.Dataset, r.Decoder, r.Thresh)
	fmt.Fprintf(out, "engine outputs: %s (%d of %d images differ)\n", yesNo(r.Outputs.Match), r.Outputs.Mismatched, r.Images)
	if m := r.Outputs.First; m != nil {
		if m.Stage == "input" {
			fmt.Fprintf(out, "  first mismatch: %s, the packed engine input already differs (decode, letterbox or first layer)\n", m.Image)
		} else {
			fmt.Fprintf(out, "  first mismatch: %s, layer %d (%s), channel %d at y=%d x=%d: board %d, host %d (%d values in channels %v)\n",
				m.Image, m.Layer, m.LayerName, m.Channel, m.Y, m.X, m.Board, m.Host, m.Values, m.Channels)
		}
	}
	fmt.Fprintf(out, "detections:     %s (%d of %d images differ)\n", yesNo(r.Detections.Match), r.Detections.Mismatched, r.Images)
	fmt.Fprintf(out, "accuracy:       %s (mAP board %.2f %%, host %.2f %%", yesNo(r.Accuracy.Match), 100*r.Accuracy.Board.MAP, 100*r.Accuracy.Host.MAP)
	if r.Accuracy.Float != nil {
		fmt.Fprintf(out, ", float %.2f %%", 100*r.Accuracy.Float.MAP)
	}
	fmt.Fprintln(out, ")")
	w := len("class")
	for _, c := range r.Accuracy.Board.Classes {
		w = max(w, len(c.Class))
	}
	fmt.Fprintf(out, "  %-*s %8s %8s", w, "class", "board AP", "host AP")
	if r.Accuracy.Float != nil {
		fmt.Fprintf(out, " %8s", "float AP")
	}
	fmt.Fprintln(out)
	for i, c := range r.Accuracy.Board.Classes {
		fmt.Fprintf(out, "  %-*s %8.2f %8.2f", w, c.Class, 100*c.AP, 100*r.Accuracy.Host.Classes[i].AP)
		if r.Accuracy.Float != nil {
			if fc, ok := r.Accuracy.Float.Class(c.Class); ok {
				fmt.Fprintf(out, " %8.2f", 100*fc.AP)
			}
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "%.1f s, %.2f images/s (board engine %.0f ms/image); the live feed was %s\n",
		r.Timing.Seconds, r.Timing.ImagesPerSecond, r.Timing.BoardEngineMS, r.Feed)
	if r.Timing.LocalizeSeconds > 0 {
		fmt.Fprintf(out, "mismatch localized in %.2f s\n", r.Timing.LocalizeSeconds)
	}
	if r.Match {
		fmt.Fprintln(out, "RESULT: the board matches the host reference")
	} else {
		fmt.Fprintln(out, "RESULT: the board differs from the host reference")
	}
}

// Summary says in one line what differs (for the error of a failed verification).
func (r *Report) Summary() string {
	var parts []string
	if m := r.Outputs.First; m != nil && m.Stage == "engine" {
		parts = append(parts, fmt.Sprintf("engine output of %s differs first in layer %d (%s), channel %d", m.Image, m.Layer, m.LayerName, m.Channel))
	} else if m != nil {
		parts = append(parts, fmt.Sprintf("engine input of %s differs", m.Image))
	}
	if !r.Detections.Match {
		parts = append(parts, fmt.Sprintf("detections differ on %d images", r.Detections.Mismatched))
	}
	if !r.Accuracy.Match {
		parts = append(parts, fmt.Sprintf("mAP board %.4f vs host %.4f", r.Accuracy.Board.MAP, r.Accuracy.Host.MAP))
	}
	return "verify: " + strings.Join(parts, "; ")
}
