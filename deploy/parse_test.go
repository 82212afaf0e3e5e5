package deploy

import (
	"strings"
	"testing"
)

const stateSample = `current releases/20261127-080000.000-aaaaaaaaaa
release 1 0 20261127-070000.000-bbbbbbbbbb
file 20261127-070000.000-bbbbbbbbbb 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  pynq-agent
release 1 0 20261127-080000.000-aaaaaaaaaa
file 20261127-080000.000-aaaaaaaaaa 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  pynq-agent
file 20261127-080000.000-aaaaaaaaaa fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210  model/with space.bin
release 0 0 20261127-090000.000-cccccccccc
release 1 1 20261127-085000.000-dddddddddd
release 1 0 not/ours
`

func TestParseState(t *testing.T) {
	s, err := parseState(stateSample)
	if err != nil {
		t.Fatal(err)
	}
	if s.Current != "20261127-080000.000-aaaaaaaaaa" || len(s.Releases) != 4 {
		t.Fatalf("state %+v", s)
	}
	if got := s.Release("20261127-080000.000-aaaaaaaaaa").Files["model/with space.bin"]; !strings.HasPrefix(got, "fedcba") {
		t.Errorf("manifest entry with a space: %q", got)
	}
	if p := s.previousRelease(); p != "20261127-070000.000-bbbbbbbbbb" {
		t.Errorf("previous release %q", p)
	}
	if p := partialReleases(s); len(p) != 1 || p[0] != "20261127-090000.000-cccccccccc" {
		t.Errorf("partial releases %v", p)
	}
	for _, bad := range []string{"release 2 0 x", "file x nothex  name", "bogus line"} {
		if _, err := parseState(bad); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("parseState(%q): err %v, want a line-numbered error", bad, err)
		}
	}
}

func TestParseFacts(t *testing.T) {
	f, err := parseFacts("arch=armv7l\nkernel=5.15.19-xilinx-v2022.1\nuid=1000\n" +
		"df=/dev/mmcblk0p2  15023044 6170276   8177460      44% /\nsystemd=yes\nsudo=yes\n")
	if err != nil {
		t.Fatal(err)
	}
	if f.Arch != "armv7l" || f.UID != 1000 || !f.Sudo || !f.Systemd || f.FreeBytes != 8177460*1024 || f.Mount != "/" {
		t.Errorf("facts %+v", f)
	}
	if err := CheckFacts(f, nil, "armv7l", 1<<20); err != nil {
		t.Errorf("a PYNQ-Z2 refused: %v", err)
	}
	for _, tc := range []struct {
		facts Facts
		bin   string
		want  string
	}{
		{Facts{Arch: "x86_64", Systemd: true, UID: 0, FreeBytes: 1 << 30}, "", "want armv7l"},
		{Facts{Arch: "armv7l", Systemd: true, UID: 0, FreeBytes: 1 << 30}, "x86_64", "GOARCH=arm"},
		{Facts{Arch: "armv7l", UID: 0, FreeBytes: 1 << 30}, "armv7l", "systemd"},
		{Facts{Arch: "armv7l", Systemd: true, UID: 1000, FreeBytes: 1 << 30}, "armv7l", "cannot become root"},
		{Facts{Arch: "armv7l", Systemd: true, UID: 0, FreeBytes: 1 << 20}, "armv7l", "not enough space"},
	} {
		if err := CheckFacts(tc.facts, nil, tc.bin, 1<<20); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckFacts(%+v, %q): %v, want %q", tc.facts, tc.bin, err, tc.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/opt/pynq-agent": "/opt/pynq-agent", "": "''", "a b": "'a b'", "it's": `'it'\''s'`, "$(x)": "'$(x)'",
	} {
		if got := shq(in); got != want {
			t.Errorf("shq(%q) = %s, want %s", in, got, want)
		}
	}
}

func FuzzParseState(f *testing.F) {
	f.Add(stateSample)
	f.Add("release 1 0 a\nfile a 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  x\n")
	f.Add("current /\nrelease 1\nfile\n")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := parseState(in)
		if err != nil {
			return
		}
		for _, r := range s.Releases {
			if !validReleaseName(r.Name) {
				t.Fatalf("accepted release name %q", r.Name)
			}
		}
		_ = s.previousRelease()
	})
}

func FuzzParseFacts(f *testing.F) {
	f.Add("arch=armv7l\nkernel=5.4.0-xilinx-v2020.2\nuid=0\ndf=/dev/root 100 50 50 50% /\nsystemd=yes\nsudo=no\n")
	f.Add("df=a b c d e f g\n")
	f.Add("arch=\nuid=-1\ndf=x 1 2 -3 4 /\n")
	f.Fuzz(func(t *testing.T, in string) {
		facts, err := parseFacts(in)
		if err == nil && facts.FreeBytes < 0 {
			t.Fatalf("negative free space from %q", in)
		}
	})
}
