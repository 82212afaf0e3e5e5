// Package dataset owns validation and calibration datasets on disk: darknet-form
// directories (images with same-name .txt labels `class cx cy w h` and a names file),
// darknet list files (one image path per line, labels beside each image or found by
// darknet's images -> labels path rule) and VOC-form trees (Annotations/*.xml +
// JPEGImages/). Every reader yields the same thing: images with ground-truth boxes in
// VOC pixel coordinates (1-based, inclusive corners, as the VOC devkit and darknet's
// `detector valid` use them) and class names, so that models and datasets are matched
// by class name rather than by index.
package dataset

import (
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // image sizes of darknet-form datasets
	_ "image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Format names a dataset layout.
type Format string

const (
	FormatDarknet Format = "darknet" // directory of images + same-name .txt labels
	FormatList    Format = "list"    // darknet list file of image paths
	FormatVOC     Format = "voc"     // Annotations/*.xml + JPEGImages/
)

// Object is one ground-truth box.
type Object struct {
	Class     string
	Box       [4]float64 // x1, y1, x2, y2: VOC pixel coordinates (1-based, inclusive)
	Difficult bool
}

// Image is one dataset image with its ground truth.
type Image struct {
	ID      string // image file name without directory and extension (darknet/VOC image id)
	Path    string // the image file; "" when the dataset holds only labels
	Width   int
	Height  int
	Objects []Object
}

// Dataset is a loaded dataset.
type Dataset struct {
	Path   string
	Format Format
	// Names are the dataset's class names: the names file of darknet forms, the
	// names seen in the XML files (in order of appearance) for VOC.
	Names  []string
	Images []Image
	// Warnings lists recoverable oddities (images without labels, ...), one per line.
	Warnings []string
}

// Options tune [Open].
type Options struct {
	// NamesFile is the class names file of darknet-form labels. Default: classes.names
	// or the only *.names file in the dataset directory (or beside the list file).
	NamesFile string
	// Names are used instead of a names file when set.
	Names []string
	// ImageSet restricts a VOC tree to the ids of an image-set file: a path, or a name
	// resolved as ImageSets/Main/<name>.txt in the tree (e.g. "val"). Default: every
	// annotation.
	ImageSet string
	// Size gives an image's size by id when the image file is absent (label-only
	// ground truth; e.g. sizes from `pynqctl detect --json`). Optional.
	Size func(id string) (w, h int, ok bool)
}

// imageExts are the image file extensions darknet-form directories may hold.
var imageExts = []string{".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"}

// IsImage reports whether path has an image extension.
func IsImage(path string) bool { return slices.Contains(imageExts, filepath.Ext(path)) }

// Open loads the dataset at path: a VOC tree when path/Annotations exists, a
// darknet-form directory otherwise, and a darknet list file when path is a file.
func Open(path string, opt Options) (*Dataset, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if !st.IsDir() {
		return OpenList(path, opt)
	}
	if st, err := os.Stat(filepath.Join(path, "Annotations")); err == nil && st.IsDir() {
		return OpenVOCSet(path, opt.ImageSet)
	}
	return OpenDarknet(path, opt)
}

// ID is the image id of a path: its base name without extension.
func ID(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// ImageIDs returns the ids in dataset order.
func (d *Dataset) ImageIDs() []string {
	ids := make([]string, len(d.Images))
	for i, im := range d.Images {
		ids[i] = im.ID
	}
	return ids
}

// ObjectCount counts objects per class name (difficult ones excluded).
func (d *Dataset) ObjectCount() map[string]int {
	n := map[string]int{}
	for _, im := range d.Images {
		for _, o := range im.Objects {
			if !o.Difficult {
				n[o.Class]++
			}
		}
	}
	return n
}

// checkUniqueIDs rejects datasets where two images share an id: detections name
// images by id, so they would be ambiguous (the devkit errors on this too).
func (d *Dataset) checkUniqueIDs() error {
	seen := map[string]string{}
	for _, im := range d.Images {
		where := im.Path
		if prev, ok := seen[im.ID]; ok {
			return fmt.Errorf("dataset %s: image id %q used twice (%s and %s); ids must be unique", d.Path, im.ID, prev, where)
		}
		seen[im.ID] = where
	}
	return nil
}

// imageSize reads an image file's header.
func imageSize(path string) (int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	return cfg.Width, cfg.Height, nil
}

// ErrNoNames says a darknet-form dataset has no names file.
var ErrNoNames = errors.New("no class names file")
