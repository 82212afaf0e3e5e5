package mapeval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Detections read from files, with the image sizes the file states (JSON lines do).
type Detections struct {
	Dets  []Detection
	Sizes map[string][2]int // image id -> width, height (detect JSON only)
}

// maxDetLine bounds one line of a detection file (a JSON line with hundreds of
// detections is tens of KiB).
const maxDetLine = 16 << 20

// ReadComp4 reads one file of darknet's `detector valid`: "image_id score x1 y1 x2 y2"
// per line, boxes already in VOC pixel coordinates. Errors name the file and line.
func ReadComp4(r io.Reader, name, class string) ([]Detection, error) {
	var out []Detection
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<16)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 6 {
			return nil, fmt.Errorf("%s:%d: want 6 fields `image_id score x1 y1 x2 y2`, got %d", name, line, len(f))
		}
		d := Detection{Image: f[0], Class: class}
		var v [5]float64
		for i, s := range f[1:] {
			x, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("%s:%d: field %d %q is not a finite number", name, line, i+2, clipS(s))
			}
			v[i] = x
		}
		d.Score = v[0]
		copy(d.Box[:], v[1:])
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func clipS(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// comp4Name is darknet's results file name: <prefix>det_<set>_<class>.txt
// (comp4_det_test_chair.txt).
var comp4Name = regexp.MustCompile(`^.*?det_[^_]+_(.+)$`)

// Comp4Class returns the class a comp4 file name holds: with names, the longest name
// the file name ends with ("_"+name, so class names may contain underscores); without,
// whatever follows "det_<set>_".
func Comp4Class(file string, names []string) (string, bool) {
	base := strings.TrimSuffix(filepath.Base(file), ".txt")
	best := ""
	for _, n := range names {
		if (base == n || strings.HasSuffix(base, "_"+n)) && len(n) > len(best) {
			best = n
		}
	}
	if best != "" {
		return best, true
	}
	if names != nil {
		return "", false
	}
	if m := comp4Name.FindStringSubmatch(base); m != nil {
		return m[1], true
	}
	return "", false
}

// jsonImage is one line of `pynqctl detect --json`.
type jsonImage struct {
	Image      string `json:"image"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	Detections []struct {
		Class   string     `json:"class"`
		ClassID *int       `json:"class_id"`
		Score   float64    `json:"score"`
		Box     [4]float64 `json:"box"`
	} `json:"detections"`
}

var unnamedClass = regexp.MustCompile(`^class [0-9]+$`)

// ReadDetectJSON reads the JSON lines of `pynqctl detect --json`. The image id is the
// image's base name without extension; boxes (0-based pixels) move by +1 into VOC
// pixel coordinates as darknet's `detector valid` writes them. A detection's class is
// its "class" name unless that is a placeholder ("class 3") and names are given.
func ReadDetectJSON(r io.Reader, name string, names []string) (*Detections, error) {
	out := &Detections{Sizes: map[string][2]int{}}
	br := bufio.NewReader(r)
	for line := 1; ; line++ {
		b, err := readLine(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		var im jsonImage
		if err := json.Unmarshal(b, &im); err != nil {
			return nil, fmt.Errorf("%s:%d: %w (want one `pynqctl detect --json` object per line)", name, line, err)
		}
		if im.Image == "" {
			return nil, fmt.Errorf("%s:%d: no \"image\"", name, line)
		}
		id := strings.TrimSuffix(filepath.Base(im.Image), filepath.Ext(im.Image))
		out.Sizes[id] = [2]int{im.Width, im.Height}
		for i, d := range im.Detections {
			class := d.Class
			if (class == "" || unnamedClass.MatchString(class)) && d.ClassID != nil && *d.ClassID >= 0 && *d.ClassID < len(names) {
				class = names[*d.ClassID]
			}
			if class == "" {
				return nil, fmt.Errorf("%s:%d: detection %d has no class", name, line, i+1)
			}
			det := Detection{Image: id, Class: class, Score: d.Score, Box: VOCBox(d.Box, im.Width, im.Height)}
			out.Dets = append(out.Dets, det)
		}
	}
	return out, nil
}

func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxDetLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxDetLine)
		}
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(line) > 0:
			return line, nil
		}
		return nil, err
	}
}

// LoadDetections reads detections from path: a directory of comp4 files
// (comp4_det_test_<class>.txt; or *.json / *.jsonl detect output), a JSON-lines file,
// or one comp4 file (class from its name).
func LoadDetections(path string, names []string) (*Detections, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("detections: %w", err)
	}
	if !st.IsDir() {
		return loadDetectionFile(path, names)
	}
	var files []string
	for _, pat := range []string{"*.txt", "*.json", "*.jsonl"} {
		m, _ := filepath.Glob(filepath.Join(path, pat))
		files = append(files, m...)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("detections %s: no comp4_det_test_<class>.txt or .json files", path)
	}
	all := &Detections{Sizes: map[string][2]int{}}
	for _, f := range files {
		d, err := loadDetectionFile(f, names)
		if err != nil {
			return nil, err
		}
		all.Dets = append(all.Dets, d.Dets...)
		for k, v := range d.Sizes {
			all.Sizes[k] = v
		}
	}
	return all, nil
}

func loadDetectionFile(path string, names []string) (*Detections, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("detections: %w", err)
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		return ReadDetectJSON(bytes.NewReader(b), path, names)
	}
	class, ok := Comp4Class(path, names)
	if !ok {
		return nil, fmt.Errorf("detections %s: cannot tell the class from the file name (want comp4_det_test_<class>.txt with <class> in the names file)", path)
	}
	dets, err := ReadComp4(bytes.NewReader(b), path, class)
	if err != nil {
		return nil, err
	}
	return &Detections{Dets: dets}, nil
}
