package label

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Rejections is a reviewer's rejection list: whole images, or single boxes, by the ids
// of a previous run's output.
type Rejections struct {
	Images map[string]bool         // image id -> rejected
	Boxes  map[string]map[int]bool // image id -> box index -> rejected
}

// maxRejectLine bounds one line; ids are file names.
const maxRejectLine = 4096

// ParseRejections reads a rejection list: one image id per line ("id" rejects the
// image, "id N" only its box N, as numbered in labels.json and on the thumbnails); "#"
// starts a comment and blank lines are skipped. Errors name name:line.
func ParseRejections(r io.Reader, name string) (*Rejections, error) {
	rej := &Rejections{Images: map[string]bool{}, Boxes: map[string]map[int]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxRejectLine)
	line := 0
	for sc.Scan() {
		line++
		text, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(text)
		switch len(f) {
		case 0:
			continue
		case 1:
			rej.Images[f[0]] = true
			continue
		case 2:
		default:
			return nil, fmt.Errorf("%s:%d: want `ID` or `ID BOX_INDEX`, got %d fields", name, line, len(f))
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s:%d: box index %q is not a non-negative integer", name, line, clip(f[1]))
		}
		if rej.Boxes[f[0]] == nil {
			rej.Boxes[f[0]] = map[int]bool{}
		}
		rej.Boxes[f[0]][n] = true
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes (not a rejection list?)", name, line+1, maxRejectLine)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return rej, nil
}

// LoadRejections reads a rejection list file.
func LoadRejections(path string) (*Rejections, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rejection list: %w", err)
	}
	defer f.Close()
	return ParseRejections(f, path)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// image reports whether the image id is rejected (nil-safe).
func (r *Rejections) image(id string) bool { return r != nil && r.Images[id] }

// box reports whether box i of image id is rejected (nil-safe).
func (r *Rejections) box(id string, i int) bool { return r != nil && r.Boxes[id][i] }

// entry is one line of a rejection list: an image (box < 0) or one of its boxes.
type entry struct {
	id  string
	box int
}

func (e entry) String() string {
	if e.box < 0 {
		return e.id
	}
	return e.id + " " + strconv.Itoa(e.box)
}

// entries lists the list's lines, sorted by id then box (nil-safe).
func (r *Rejections) entries() []entry {
	if r == nil {
		return nil
	}
	var out []entry
	for id := range r.Images {
		out = append(out, entry{id, -1})
	}
	for id, boxes := range r.Boxes {
		for i := range boxes {
			out = append(out, entry{id, i})
		}
	}
	slices.SortFunc(out, func(a, b entry) int {
		if c := strings.Compare(a.id, b.id); c != 0 {
			return c
		}
		return a.box - b.box
	})
	return out
}
