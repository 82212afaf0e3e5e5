package dataset

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// vocAnnotation is the part of a VOC annotation file evaluation needs. Only direct
// children are read, so the <part> boxes of VOC person layouts are ignored.
type vocAnnotation struct {
	Filename string `xml:"filename"`
	Size     struct {
		Width  string `xml:"width"`
		Height string `xml:"height"`
	} `xml:"size"`
	Objects []struct {
		Name      string `xml:"name"`
		Difficult string `xml:"difficult"`
		Box       *struct {
			XMin string `xml:"xmin"`
			YMin string `xml:"ymin"`
			XMax string `xml:"xmax"`
			YMax string `xml:"ymax"`
		} `xml:"bndbox"`
	} `xml:"object"`
}

// maxXML bounds one annotation file (real ones are a few KiB).
const maxXML = 16 << 20

// ParseVOC reads one VOC annotation. The image id is left empty (callers use the
// annotation file's name); Path is the <filename> element. Errors name the file and,
// for XML syntax errors, the line.
func ParseVOC(r io.Reader, name string) (*Image, error) {
	var a vocAnnotation
	dec := xml.NewDecoder(io.LimitReader(r, maxXML))
	dec.Strict = true
	if err := dec.Decode(&a); err != nil {
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%s:%d: %s (not a VOC annotation?)", name, se.Line, se.Msg)
		}
		return nil, fmt.Errorf("%s: %w (not a VOC annotation?)", name, err)
	}
	im := &Image{Path: strings.TrimSpace(a.Filename)}
	var err error
	if im.Width, err = sizeField(a.Size.Width); err != nil {
		return nil, fmt.Errorf("%s: <size><width>: %w", name, err)
	}
	if im.Height, err = sizeField(a.Size.Height); err != nil {
		return nil, fmt.Errorf("%s: <size><height>: %w", name, err)
	}
	for i, o := range a.Objects {
		obj := Object{Class: strings.TrimSpace(o.Name)}
		if obj.Class == "" {
			return nil, fmt.Errorf("%s: object %d: empty <name>", name, i+1)
		}
		if o.Box == nil {
			return nil, fmt.Errorf("%s: object %d (%s): no <bndbox>", name, i+1, obj.Class)
		}
		for j, s := range []string{o.Box.XMin, o.Box.YMin, o.Box.XMax, o.Box.YMax} {
			v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%s: object %d (%s): <%s> %q is not a finite number", name, i+1, obj.Class, boxTags[j], clip(s))
			}
			obj.Box[j] = v
		}
		if obj.Difficult, err = flag(o.Difficult); err != nil {
			return nil, fmt.Errorf("%s: object %d (%s): <difficult>: %w", name, i+1, obj.Class, err)
		}
		im.Objects = append(im.Objects, obj)
	}
	return im, nil
}

var boxTags = [4]string{"xmin", "ymin", "xmax", "ymax"}

func sizeField(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil // absent: read from the image later
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > 1<<20 {
		return 0, fmt.Errorf("%q is not an image size", clip(s))
	}
	return v, nil
}

func flag(s string) (bool, error) {
	switch strings.TrimSpace(s) {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, fmt.Errorf("%q is not 0 or 1", clip(s))
}

// OpenVOC loads a VOC tree: every dir/Annotations/*.xml (image id = the XML file's
// name), images in dir/JPEGImages. Class names are those the annotations use, in
// order of first appearance.
func OpenVOC(dir string) (*Dataset, error) { return OpenVOCSet(dir, "") }

// OpenVOCSet is [OpenVOC] restricted to an image set (see [Options.ImageSet]).
func OpenVOCSet(dir, imageSet string) (*Dataset, error) {
	var xmls []string
	var err error
	if imageSet == "" {
		xmls, err = filepath.Glob(filepath.Join(dir, "Annotations", "*.xml"))
	} else {
		xmls, err = imageSetAnnotations(dir, imageSet)
	}
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if len(xmls) == 0 {
		return nil, fmt.Errorf("dataset %s: no Annotations/*.xml", dir)
	}
	d := &Dataset{Path: dir, Format: FormatVOC}
	seen := map[string]bool{}
	for _, p := range xmls {
		im, err := readVOCFile(p, dir)
		if err != nil {
			return nil, err
		}
		for _, o := range im.Objects {
			if !seen[o.Class] {
				seen[o.Class] = true
				d.Names = append(d.Names, o.Class)
			}
		}
		d.Images = append(d.Images, *im)
	}
	return d, d.checkUniqueIDs()
}

func readVOCFile(path, dir string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	im, err := ParseVOC(f, path)
	if err != nil {
		return nil, err
	}
	im.ID = ID(path)
	img := ""
	for _, cand := range []string{im.Path, im.ID + ".jpg", im.ID + ".png"} {
		if p := filepath.Join(dir, "JPEGImages", filepath.Base(cand)); cand != "" && exists(p) {
			img = p
			break
		}
	}
	im.Path = img
	if im.Width == 0 || im.Height == 0 {
		if img == "" {
			return nil, fmt.Errorf("%s: no <size> and no image in JPEGImages/ to read it from", path)
		}
		if im.Width, im.Height, err = imageSize(img); err != nil {
			return nil, fmt.Errorf("dataset: %w", err)
		}
	}
	return im, nil
}

// imageSetAnnotations lists the annotation files of an image-set file's ids (the
// first field of each line; class sets add a 1/-1/0 column).
func imageSetAnnotations(dir, set string) ([]string, error) {
	path := set
	if !strings.ContainsAny(set, `/\`) && !strings.HasSuffix(set, ".txt") {
		path = filepath.Join(dir, "ImageSets", "Main", set+".txt")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("image set: %w", err)
	}
	var out []string
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		p := filepath.Join(dir, "Annotations", f[0]+".xml")
		if !exists(p) {
			return nil, fmt.Errorf("%s:%d: no annotation %s", path, i+1, p)
		}
		out = append(out, p)
	}
	return out, nil
}
