package label

import (
	"slices"
	"strings"
	"testing"
)

func TestParseRejections(t *testing.T) {
	text := "# reviewed\n\nimg_1\n  img_2 3 # wrong box\nimg_2 0\r\nimg_3\t1\n"
	r, err := ParseRejections(strings.NewReader(text), "rej.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !r.image("img_1") || r.image("img_2") || !r.box("img_2", 3) || !r.box("img_2", 0) || !r.box("img_3", 1) || r.box("img_1", 0) {
		t.Errorf("parsed %+v", r)
	}
	var lines []string
	for _, e := range r.entries() {
		lines = append(lines, e.String())
	}
	if want := []string{"img_1", "img_2 0", "img_2 3", "img_3 1"}; !slices.Equal(lines, want) {
		t.Errorf("entries %q, want %q", lines, want)
	}
	var none *Rejections
	if none.image("x") || none.box("x", 0) || none.entries() != nil {
		t.Error("a nil list rejects something")
	}
}

func TestParseRejectionsErrors(t *testing.T) {
	for text, want := range map[string]string{
		"ok\nimg 1 2\n":               "rej.txt:2: want `ID` or `ID BOX_INDEX`",
		"a\n\n# c\nimg x\n":           `rej.txt:4: box index "x"`,
		"img -1\n":                    "rej.txt:1: box index",
		strings.Repeat("x", 5000):     "rej.txt:1: line longer",
		"img 99999999999999999999999": "rej.txt:1: box index",
	} {
		_, err := ParseRejections(strings.NewReader(text), "rej.txt")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRejections(%.20q) error %v, want %q", text, err, want)
		}
	}
}

func FuzzParseRejections(f *testing.F) {
	for _, s := range []string{"", "a\nb 1\n# c\n", "a 1 2", "x -3", "\xff\xfe 1", "id #c\n 7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		r, err := ParseRejections(strings.NewReader(text), "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz:") {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		// Every entry prints as a line that parses back to the same entry.
		for _, e := range r.entries() {
			back, err := ParseRejections(strings.NewReader(e.String()), "back")
			if err != nil {
				t.Fatalf("entry %q does not parse back: %v", e, err)
			}
			if got := back.entries(); len(got) != 1 || got[0] != e {
				t.Fatalf("entry %q parses back as %v", e, got)
			}
		}
	})
}
