package label

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// TeacherSpec describes one teacher: its model, class names, threshold and class map.
type TeacherSpec struct {
	Name         string  // shown in labels.json; default: the cfg or model directory name
	Cfg, Weights string  // a darknet float model ...
	Model        string  // ... or a QNN-MO parameter directory
	Names        string  // the teacher's class names file
	Thresh       float32 // the teacher's own score threshold; 0 means Options.Uncertain
	// Map sends teacher classes to target classes; several may share a target. Empty
	// means every teacher class whose name is a target class maps to it.
	Map []ClassMap
}

// ClassMap maps the teacher class From to the target class To, by name.
type ClassMap struct{ From, To string }

// SpecKeys are the keys of a teacher spec string, for help texts.
const SpecKeys = "cfg, weights, model, names, thresh, map, name"

// ParseTeacherSpec reads a teacher spec: comma-separated key=value pairs with the keys
// of [SpecKeys], e.g. "cfg=a.cfg,weights=a.weights,names=coco.names,thresh=0.25,
// map=chair:chair;couch:chair" or "model=params,names=voc.names". map may be repeated
// and takes ;-separated TEACHER:TARGET pairs. Errors quote the spec.
func ParseTeacherSpec(s string) (TeacherSpec, error) {
	var t TeacherSpec
	seen := map[string]bool{}
	for _, field := range strings.Split(s, ",") {
		if strings.TrimSpace(field) == "" {
			continue
		}
		k, v, ok := strings.Cut(field, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return t, fmt.Errorf("teacher %q: %q is not key=value", s, field)
		}
		if seen[k] && k != "map" {
			return t, fmt.Errorf("teacher %q: %s given twice", s, k)
		}
		seen[k] = true
		if err := t.set(k, v); err != nil {
			return t, fmt.Errorf("teacher %q: %w", s, err)
		}
	}
	if err := t.check(); err != nil {
		return t, fmt.Errorf("teacher %q: %w", s, err)
	}
	return t, nil
}

func (t *TeacherSpec) set(k, v string) error {
	switch k {
	case "name":
		t.Name = v
	case "cfg":
		t.Cfg = v
	case "weights":
		t.Weights = v
	case "model":
		t.Model = v
	case "names":
		t.Names = v
	case "thresh":
		f, err := strconv.ParseFloat(v, 32)
		if err != nil || !(f > 0 && f < 1) {
			return fmt.Errorf("thresh %q: want a number between 0 and 1", v)
		}
		t.Thresh = float32(f)
	case "map":
		for _, pair := range strings.Split(v, ";") {
			from, to, ok := strings.Cut(pair, ":")
			from, to = strings.TrimSpace(from), strings.TrimSpace(to)
			if !ok || from == "" || to == "" {
				return fmt.Errorf("map %q: want TEACHER_CLASS:TARGET_CLASS pairs separated by ;", v)
			}
			t.Map = append(t.Map, ClassMap{From: from, To: to})
		}
	default:
		return fmt.Errorf("unknown key %q (known: %s)", k, SpecKeys)
	}
	return nil
}

// check reports a spec that names no model, two models or no names file.
func (t TeacherSpec) check() error {
	switch {
	case t.Model != "" && (t.Cfg != "" || t.Weights != ""):
		return errors.New("give either model= or cfg= and weights=, not both")
	case t.Model == "" && (t.Cfg == "" || t.Weights == ""):
		return errors.New("need cfg= and weights= (a darknet model) or model= (a QNN-MO parameter directory)")
	case t.Names == "":
		return errors.New("need names= (the teacher's class names file)")
	case t.Thresh < 0 || t.Thresh >= 1:
		return fmt.Errorf("thresh %g: want a number between 0 and 1", t.Thresh)
	}
	return nil
}

// defaultName names a teacher after its cfg file, or its model directory (the parent
// when the directory is QNN-MO's generic "params").
func (t TeacherSpec) defaultName() string {
	if t.Name != "" {
		return t.Name
	}
	if t.Cfg != "" {
		return strings.TrimSuffix(filepath.Base(t.Cfg), filepath.Ext(t.Cfg))
	}
	dir := filepath.Clean(t.Model)
	if filepath.Base(dir) == "params" {
		dir = filepath.Dir(dir)
	}
	return filepath.Base(dir)
}

// classMap returns, per teacher class, the target class index or -1.
func classMap(teacher, target []string, pairs []ClassMap) ([]int, error) {
	m := make([]int, len(teacher))
	for i, n := range teacher {
		m[i] = -1
		if len(pairs) == 0 {
			m[i] = slices.Index(target, n)
		}
	}
	if len(pairs) == 0 {
		if slices.Max(m) < 0 {
			return nil, fmt.Errorf("no class name in common with the target (%s); map classes with map=TEACHER:TARGET", strings.Join(target, ", "))
		}
		return m, nil
	}
	for _, p := range pairs {
		i := slices.Index(teacher, p.From)
		if i < 0 {
			return nil, fmt.Errorf("map %s:%s: the teacher's names have no class %q", p.From, p.To, p.From)
		}
		j := slices.Index(target, p.To)
		if j < 0 {
			return nil, fmt.Errorf("map %s:%s: the target names have no class %q (target: %s)", p.From, p.To, p.To, strings.Join(target, ", "))
		}
		if m[i] >= 0 && m[i] != j {
			return nil, fmt.Errorf("map %s:%s: %q is already mapped to %q", p.From, p.To, p.From, target[m[i]])
		}
		m[i] = j
	}
	return m, nil
}

// teacher is a loaded teacher.
type teacher struct {
	name     string
	thresh   float32
	names    []string
	toTarget []int
	det      detector.Detector
	dec      imageio.Decoder
}

// newTeacher reads the names and resolves the class map; the model loads later
// ([teacher.load]) so that every cheap check runs before any slow one.
func newTeacher(spec TeacherSpec, target []string, thresh float32) (*teacher, error) {
	if err := spec.check(); err != nil {
		return nil, err
	}
	names, err := boxes.LoadNames(spec.Names)
	if err != nil {
		return nil, err
	}
	m, err := classMap(names, target, spec.Map)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.Names, err)
	}
	if spec.Thresh > 0 {
		thresh = spec.Thresh
	}
	return &teacher{name: spec.defaultName(), thresh: thresh, names: names, toTarget: m}, nil
}

// load reads the model the spec names.
func (t *teacher) load(spec TeacherSpec, threads int) error {
	l, err := detector.Load(detector.Spec{Dir: spec.Model, Cfg: spec.Cfg, Weights: spec.Weights, Threads: threads})
	if err != nil {
		return err
	}
	t.det, t.dec = l.Detector, l.Decoder
	return l.CheckNames(spec.Names, len(t.names))
}

// boxes runs the teacher on img and returns its boxes of target classes.
func (t *teacher) boxes(img *imageio.Image, index int) ([]Box, error) {
	objs, err := detector.Objects(t.det, img, t.thresh, t.names)
	if err != nil {
		return nil, err
	}
	return mapObjects(objs, t.toTarget, index), nil
}

// mapObjects keeps the objects of mapped classes, as target-class boxes of teacher.
func mapObjects(objs []boxes.Detection, toTarget []int, teacher int) []Box {
	var out []Box
	for _, o := range objs {
		if o.Class < 0 || o.Class >= len(toTarget) || toTarget[o.Class] < 0 {
			continue
		}
		out = append(out, Box{Class: toTarget[o.Class], Score: o.Score, Rect: o.Box, Teacher: teacher})
	}
	return out
}
