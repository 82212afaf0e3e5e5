package dataset

import (
	"strings"
	"testing"
)

func TestParseNames(t *testing.T) {
	names, err := ParseNames([]byte("person\r\n chair \nsofa\n\n"), "n")
	if err != nil || strings.Join(names, ",") != "person,chair,sofa" {
		t.Fatalf("got %q %v", names, err)
	}
	for _, bad := range []string{"", "\n\n", "a\n\nb\n", "\n\nchair\n", "\xff\xd8\xff\xe0\x00\x10JFIF\x00"} {
		if _, err := ParseNames([]byte(bad), "n"); err == nil {
			t.Errorf("ParseNames(%q) succeeded", bad)
		}
	}
	if _, err := ParseNames([]byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), "dog.jpg"); err == nil || !strings.Contains(err.Error(), "dog.jpg: binary data") {
		t.Errorf("an image as the names file: %v", err)
	}
}

func FuzzParseNames(f *testing.F) {
	f.Add([]byte("person\nbicycle\ncar\n"))
	f.Add([]byte("chair\r\n"))
	f.Add([]byte("a\n\nb"))
	f.Add([]byte{0xff, 0, '\n'})
	f.Fuzz(func(t *testing.T, data []byte) {
		names, err := ParseNames(data, "fuzz.names")
		if err != nil {
			return
		}
		for _, n := range names {
			if n == "" || strings.TrimSpace(n) != n {
				t.Fatalf("bad name %q", n)
			}
		}
	})
}
