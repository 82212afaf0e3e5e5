package label

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"

	"github.com/fpgadetector/pynq-agent/quant/dataset"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// Files of the output directory besides the images' own.
const (
	namesFile  = "classes.names"
	labelsJSON = "labels.json"
	indexHTML  = "index.html"
	thumbsDir  = "thumbs"
)

// labelsFile is labels.json: the settings of the run and every image's outcome.
type labelsFile struct {
	Target        []string        `json:"target"`
	Teachers      []teacherRecord `json:"teachers"`
	FuseIoU       float64         `json:"fuse_iou"`
	Thresh        float64         `json:"thresh"`
	Uncertain     float64         `json:"uncertain"`
	KeepUncertain bool            `json:"keep_uncertain"`
	Images        []imageRecord   `json:"images"`
}

type teacherRecord struct {
	Name   string   `json:"name"`
	Model  []string `json:"model"` // cfg and weights, or the parameter directory
	Names  string   `json:"names"`
	Thresh float64  `json:"thresh"`
	Map    []string `json:"map"` // TEACHER:TARGET
}

// imageRecord is one image of labels.json.
type imageRecord struct {
	ID     string      `json:"id"`
	Source string      `json:"source"`
	Width  int         `json:"width"`
	Height int         `json:"height"`
	Status Status      `json:"status"`
	Files  []string    `json:"files"` // written into the output: image link and labels
	Thumb  string      `json:"thumb"`
	Boxes  []boxRecord `json:"boxes"`
}

// accepted returns the boxes that become labels.
func (rec imageRecord) accepted() []boxRecord {
	var out []boxRecord
	for _, b := range rec.Boxes {
		if b.Status == StatusAccepted {
			out = append(out, b)
		}
	}
	return out
}

// boxRecord is one fused box of labels.json; Index is what a rejection list names.
type boxRecord struct {
	Index    int        `json:"index"`
	Class    string     `json:"class"`
	Score    float64    `json:"score"`
	Box      [4]float64 `json:"box"` // x1, y1, x2, y2 in pixels of the image
	Teachers []string   `json:"teachers"`
	Status   Status     `json:"status"` // accepted, uncertain or rejected

	class int
	rect  [4]float32
}

func newBoxRecord(index int, f Fused, target []string, ts []*teacher) boxRecord {
	b := boxRecord{Index: index, Class: target[f.Class], Score: round(float64(f.Score), 1e4), class: f.Class, rect: f.Rect}
	for i, v := range f.Rect {
		b.Box[i] = round(float64(v), 10)
	}
	for _, t := range f.Teachers {
		b.Teachers = append(b.Teachers, ts[t].name)
	}
	return b
}

func round(v, scale float64) float64 { return math.Round(v*scale) / scale }

// normalized returns the box's corners relative to a w x h image, clipped to [0, 1].
func (b boxRecord) normalized(w, h int) [4]float32 {
	fw, fh := float32(w), float32(h)
	return clip01([4]float32{b.rect[0] / fw, b.rect[1] / fh, b.rect[2] / fw, b.rect[3] / fh})
}

// darknetLine is the box as a darknet label line: class cx cy w h, normalized.
func (b boxRecord) darknetLine(w, h int) string {
	n := b.normalized(w, h)
	return fmt.Sprintf("%d %.6f %.6f %.6f %.6f\n", b.class, (n[0]+n[2])/2, (n[1]+n[3])/2, n[2]-n[0], n[3]-n[1])
}

// listInputs lists the images of the arguments (directories, not recursive, or files),
// sorted by absolute path, with unique output ids.
func listInputs(args []string) ([]input, error) {
	var paths []string
	for _, a := range args {
		abs, err := absPath(a)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("input: %w", err)
		}
		if !st.IsDir() {
			if !dataset.IsImage(abs) {
				return nil, fmt.Errorf("input %s: not an image (.jpg, .jpeg, .png) or a directory", a)
			}
			paths = append(paths, abs)
			continue
		}
		entries, err := os.ReadDir(abs)
		if err != nil {
			return nil, fmt.Errorf("input: %w", err)
		}
		n := len(paths)
		for _, e := range entries {
			if !e.IsDir() && dataset.IsImage(e.Name()) {
				paths = append(paths, filepath.Join(abs, e.Name()))
			}
		}
		if len(paths) == n {
			return nil, fmt.Errorf("input %s: no images (.jpg, .jpeg, .png)", a)
		}
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)
	ids := uniqueIDs(paths)
	out := make([]input, len(paths))
	for i, p := range paths {
		out[i] = input{path: p, base: dataset.ID(p), id: ids[i]}
	}
	return out, nil
}

// uniqueIDs names each image by its base name; base names that occur more than once
// (from different directories) get their directory's name as a prefix, and a number if
// that is not enough. Blanks and '#' become '_' so ids stay one rejection-list field.
func uniqueIDs(paths []string) []string {
	bases := make([]string, len(paths))
	count := map[string]int{}
	for i, p := range paths {
		bases[i] = safeID(dataset.ID(p))
		count[bases[i]]++
	}
	used := map[string]bool{}
	ids := make([]string, len(paths))
	for i, p := range paths {
		id := bases[i]
		if count[id] > 1 {
			id = safeID(filepath.Base(filepath.Dir(p))) + "_" + id
		}
		cand := id
		for n := 2; used[cand]; n++ {
			cand = fmt.Sprintf("%s_%d", id, n)
		}
		used[cand] = true
		ids[i] = cand
	}
	return ids
}

func safeID(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || r == '#' {
			return '_'
		}
		return r
	}, s)
	if s == "" {
		return "image"
	}
	return s
}

// checkOut accepts a new directory (creating it), an empty one, or a previous run's
// output (whose labels.json is returned so its files can be replaced).
func checkOut(out string, inputs []input) (*labelsFile, error) {
	abs, err := absPath(out)
	if err != nil {
		return nil, err
	}
	for _, in := range inputs {
		if filepath.Dir(in.path) == abs {
			return nil, fmt.Errorf("output %s holds input images; choose another directory", out)
		}
	}
	entries, err := os.ReadDir(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("output: %w", err)
	case len(entries) == 0:
		return nil, nil
	}
	prev, err := readLabelsFile(filepath.Join(abs, labelsJSON))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("output %s is not empty and holds no %s of an earlier run; choose a new or empty directory", out, labelsJSON)
	}
	return prev, err
}

func readLabelsFile(path string) (*labelsFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lf labelsFile
	if err := json.Unmarshal(b, &lf); err != nil {
		return nil, fmt.Errorf("%s: %w (not written by this tool? choose a new directory)", path, err)
	}
	return &lf, nil
}

// remove deletes what an earlier run wrote into dir, so that images it kept and this
// run drops (rejected ones) do not linger; other files (a rejection list) stay.
func (lf *labelsFile) remove(dir string) error {
	if lf == nil {
		return nil
	}
	var names []string
	for _, rec := range lf.Images {
		names = append(append(names, rec.Files...), rec.Thumb)
	}
	names = append(names, namesFile, labelsJSON, indexHTML)
	for _, n := range names {
		if n == "" || !filepath.IsLocal(n) {
			continue // never outside dir, whatever the file says
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("replace earlier output: %w", err)
		}
	}
	return nil
}

func mkdirs(out string) error {
	if err := os.MkdirAll(filepath.Join(out, thumbsDir), 0o755); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	return nil
}

// write writes the image's thumbnail and, when it goes into the dataset, its image link
// and label file, recording the names in rec.
func (r *runner) write(rec *imageRecord, img *imageio.Image) error {
	rec.Thumb = thumbsDir + "/" + rec.ID + ".jpg"
	if err := writeThumb(filepath.Join(r.opt.Out, rec.Thumb), img, rec.Boxes, len(r.opt.Target)); err != nil {
		return err
	}
	if !r.written(*rec) {
		return nil
	}
	link := rec.ID + filepath.Ext(rec.Source)
	if err := linkOrCopy(rec.Source, filepath.Join(r.opt.Out, link)); err != nil {
		return err
	}
	var sb strings.Builder
	for _, b := range rec.accepted() {
		sb.WriteString(b.darknetLine(rec.Width, rec.Height))
	}
	txt := rec.ID + ".txt"
	if err := os.WriteFile(filepath.Join(r.opt.Out, txt), []byte(sb.String()), 0o644); err != nil {
		return fmt.Errorf("write labels: %w", err)
	}
	rec.Files = []string{link, txt}
	return nil
}

// linkOrCopy links dst to src, or copies src where symlinks are not supported.
func linkOrCopy(src, dst string) error {
	err := os.Symlink(src, dst)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("link image: %w (a file of that name is in the output; move it away)", err)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy image: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("copy image: %w", err)
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy image %s: %w", src, err)
	}
	return nil
}

// writeSummaryFiles writes classes.names, labels.json and the contact sheet.
func (r *runner) writeSummaryFiles() error {
	names := strings.Join(r.opt.Target, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(r.opt.Out, namesFile), []byte(names), 0o644); err != nil {
		return fmt.Errorf("write names: %w", err)
	}
	lf := labelsFile{
		Target: r.opt.Target, FuseIoU: round(float64(r.opt.FuseIoU), 1e4), Thresh: round(float64(r.opt.Thresh), 1e4),
		Uncertain: round(float64(r.opt.Uncertain), 1e4), KeepUncertain: r.opt.KeepUncertain, Images: r.records,
	}
	for i, t := range r.teachers {
		lf.Teachers = append(lf.Teachers, t.record(r.opt.Teachers[i], r.opt.Target))
	}
	b, err := json.MarshalIndent(lf, "", " ")
	if err != nil {
		return fmt.Errorf("encode labels.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(r.opt.Out, labelsJSON), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write labels.json: %w", err)
	}
	return writeSheet(filepath.Join(r.opt.Out, indexHTML), r.records, &r.res, r.opt.Reject)
}

func (t *teacher) record(spec TeacherSpec, target []string) teacherRecord {
	tr := teacherRecord{Name: t.name, Model: []string{spec.Cfg, spec.Weights}, Names: spec.Names,
		Thresh: round(float64(t.thresh), 1e4), Map: []string{}}
	if spec.Model != "" {
		tr.Model = []string{spec.Model}
	}
	for i, c := range t.toTarget {
		if c >= 0 {
			tr.Map = append(tr.Map, t.names[i]+":"+target[c])
		}
	}
	return tr
}
