package dataset

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Label is one line of a darknet label file: normalized centre and size.
type Label struct {
	Class        int
	CX, CY, W, H float64
	Line         int
}

// maxLabelLine bounds one label line; real lines are ~40 bytes.
const maxLabelLine = 4096

// ParseLabels reads a darknet label file (`class cx cy w h` per line, normalized to
// the image size; blank lines skipped). classes bounds the class index (0 = no bound).
// Errors name the file and line.
func ParseLabels(r io.Reader, name string, classes int) ([]Label, error) {
	var out []Label
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxLabelLine)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		l, err := parseLabel(text, classes)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		l.Line = line
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes (not a darknet label file?)", name, len(out)+1, maxLabelLine)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func parseLabel(text string, classes int) (Label, error) {
	f := strings.Fields(text)
	if len(f) != 5 {
		return Label{}, fmt.Errorf("want 5 fields `class cx cy w h`, got %d in %q", len(f), clip(text))
	}
	c, err := strconv.Atoi(f[0])
	if err != nil || c < 0 {
		return Label{}, fmt.Errorf("class %q is not a non-negative integer", clip(f[0]))
	}
	if classes > 0 && c >= classes {
		return Label{}, fmt.Errorf("class %d out of range: the names file has %d classes (0..%d)", c, classes, classes-1)
	}
	var v [4]float64
	for i, s := range f[1:] {
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return Label{}, fmt.Errorf("field %d %q is not a finite number", i+2, clip(s))
		}
		v[i] = x
	}
	if v[2] < 0 || v[3] < 0 {
		return Label{}, fmt.Errorf("negative box size %g x %g", v[2], v[3])
	}
	return Label{Class: c, CX: v[0], CY: v[1], W: v[2], H: v[3]}, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// PixelBox converts a normalized label to VOC pixel coordinates for a w x h image,
// inverting darknet's voc_label.py (which subtracts 1 from the centre of 1-based VOC
// boxes): x1 = (cx - bw/2)*w + 1, x2 = (cx + bw/2)*w + 1. The same +1 appears in the
// boxes darknet's `detector valid` writes, so both sides share one frame.
func (l Label) PixelBox(w, h int) [4]float64 {
	fw, fh := float64(w), float64(h)
	return [4]float64{
		(l.CX-l.W/2)*fw + 1, (l.CY-l.H/2)*fh + 1,
		(l.CX+l.W/2)*fw + 1, (l.CY+l.H/2)*fh + 1,
	}
}

// LabelPath returns where darknet looks for the labels of an image: the first
// "images" in the path becomes "labels", then "JPEGImages" becomes "labels", and the
// image extension becomes .txt (darknet's fill_truth_detection).
func LabelPath(imagePath string) string {
	p := strings.Replace(imagePath, "images", "labels", 1)
	p = strings.Replace(p, "JPEGImages", "labels", 1)
	return swapExt(p)
}

func swapExt(p string) string { return strings.TrimSuffix(p, filepath.Ext(p)) + ".txt" }

// findLabels returns the label file of an image: beside it first, then by darknet's
// rule; "" when neither exists.
func findLabels(imagePath string) string {
	for _, p := range []string{swapExt(imagePath), LabelPath(imagePath)} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// FindNames returns the names file of a darknet-form dataset directory:
// classes.names, else the only *.names file, in dir and then in its parent (the
// layout chairs/classes.names + chairs/val/); ErrNoNames when there is none.
func FindNames(dir string) (string, error) {
	for _, d := range []string{dir, filepath.Dir(filepath.Clean(dir))} {
		p := filepath.Join(d, "classes.names")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		m, _ := filepath.Glob(filepath.Join(d, "*.names"))
		switch len(m) {
		case 0:
			continue
		case 1:
			return m[0], nil
		}
		return "", fmt.Errorf("%s: %d *.names files (%s); say which one to use", d, len(m), strings.Join(m, ", "))
	}
	return "", fmt.Errorf("%s: %w (put classes.names there or give a names file)", dir, ErrNoNames)
}

// ReadNames reads a names file (ParseNames).
func ReadNames(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("names: %w", err)
	}
	return ParseNames(b, path)
}

// ParseNames parses a names file's bytes (name is used in errors): one class per line,
// surrounding blanks trimmed, trailing blank lines dropped; a blank line inside the list
// is an error because it would shift every later class id, and binary data (an image
// given for the names file) is refused as such.
func ParseNames(b []byte, name string) ([]string, error) {
	if bytes.IndexByte(b[:min(len(b), 4096)], 0) >= 0 {
		return nil, fmt.Errorf("%s: binary data: not a names file (one class name per line)", name)
	}
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s: no class names", name)
	}
	names := make([]string, len(lines))
	for i, l := range lines {
		names[i] = strings.TrimSpace(l)
		if names[i] == "" {
			return nil, fmt.Errorf("%s:%d: empty class name (every line is one class)", name, i+1)
		}
	}
	return names, nil
}

func namesFor(dir string, opt Options) ([]string, error) {
	if opt.Names != nil {
		return opt.Names, nil
	}
	p := opt.NamesFile
	if p == "" {
		var err error
		if p, err = FindNames(dir); err != nil {
			return nil, err
		}
	}
	return ReadNames(p)
}

// OpenDarknet loads a darknet-form directory: every image file in dir (not
// recursive; or dir/images when dir holds none) with its label file.
func OpenDarknet(dir string, opt Options) (*Dataset, error) {
	names, err := namesFor(dir, opt)
	if err != nil {
		return nil, err
	}
	d := &Dataset{Path: dir, Format: FormatDarknet, Names: names}
	imgs, err := listImages(dir)
	if err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		if sub := filepath.Join(dir, "images"); isDir(sub) {
			if imgs, err = listImages(sub); err != nil {
				return nil, err
			}
		}
	}
	for _, p := range imgs {
		if err := d.addDarknetImage(p, opt); err != nil {
			return nil, err
		}
	}
	if opt.Size != nil {
		if err := d.addLabelOnly(dir, opt); err != nil {
			return nil, err
		}
	}
	if len(d.Images) == 0 {
		return nil, fmt.Errorf("dataset %s: no images (want .jpg/.png files with same-name .txt labels, a VOC tree or a list file)", dir)
	}
	return d, d.checkUniqueIDs()
}

// OpenList loads a darknet list file: one image path per line, relative paths taken
// from the working directory as darknet does, else from the list file's directory.
func OpenList(path string, opt Options) (*Dataset, error) {
	if IsImage(path) {
		return nil, fmt.Errorf("dataset %s is an image; give the dataset directory or a list file of image paths", path)
	}
	names, err := namesFor(filepath.Dir(path), opt)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	d := &Dataset{Path: path, Format: FormatList, Names: names}
	for i, line := range strings.Split(string(b), "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if !filepath.IsAbs(p) && !exists(p) {
			if alt := filepath.Join(filepath.Dir(path), p); exists(alt) {
				p = alt
			}
		}
		if !exists(p) {
			return nil, fmt.Errorf("%s:%d: image %s not found", path, i+1, p)
		}
		if err := d.addDarknetImage(p, opt); err != nil {
			return nil, err
		}
	}
	if len(d.Images) == 0 {
		return nil, fmt.Errorf("%s: no image paths in the list file", path)
	}
	return d, d.checkUniqueIDs()
}

func (d *Dataset) addDarknetImage(path string, opt Options) error {
	im := Image{ID: ID(path), Path: path}
	var err error
	if im.Width, im.Height, err = imageSize(path); err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	lp := findLabels(path)
	if lp == "" {
		d.Warnings = append(d.Warnings, fmt.Sprintf("%s: no label file (%s or %s); taken as an image without objects", path, swapExt(path), LabelPath(path)))
	} else if im.Objects, err = readLabelFile(lp, d.Names, im.Width, im.Height); err != nil {
		return err
	}
	d.Images = append(d.Images, im)
	return nil
}

// addLabelOnly adds label files that have no image beside them when opt.Size knows
// the image's size (evaluation from labels and `detect --json` output alone).
func (d *Dataset) addLabelOnly(dir string, opt Options) error {
	have := map[string]bool{}
	for _, im := range d.Images {
		have[im.ID] = true
	}
	txts, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	slices.Sort(txts)
	for _, p := range txts {
		id := ID(p)
		if have[id] {
			continue
		}
		w, h, ok := opt.Size(id)
		if !ok {
			continue
		}
		objs, err := readLabelFile(p, d.Names, w, h)
		if err != nil {
			return err
		}
		d.Images = append(d.Images, Image{ID: id, Width: w, Height: h, Objects: objs})
	}
	return nil
}

func readLabelFile(path string, names []string, w, h int) ([]Object, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	defer f.Close()
	labels, err := ParseLabels(f, path, len(names))
	if err != nil {
		return nil, err
	}
	objs := make([]Object, len(labels))
	for i, l := range labels {
		objs[i] = Object{Class: names[l.Class], Box: l.PixelBox(w, h)}
	}
	return objs, nil
}

func listImages(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && IsImage(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil // ReadDir sorts by name
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func isDir(p string) bool { st, err := os.Stat(p); return err == nil && st.IsDir() }
