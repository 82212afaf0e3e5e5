package mapeval

import "github.com/fpgadetector/pynq-agent/quant/boxes"

// FromCandidates is darknet's validate_detector output for one image from a
// detector's candidates after NMS: every class probability above thresh is a
// detection, with darknet's +1 pixel box clipped to the w x h image (VOCBox). Classes
// past names are left out.
func FromCandidates(image string, cands []boxes.Detection, names []string, thresh float32, w, h int) []Detection {
	var out []Detection
	for _, c := range cands {
		b := VOCBox(c.Box, w, h)
		for j, p := range c.Probs {
			if p > thresh && j < len(names) {
				out = append(out, Detection{Image: image, Class: boxes.ClassName(names, j), Score: float64(p), Box: b})
			}
		}
	}
	return out
}
