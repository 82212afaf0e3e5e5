package deploy

import (
	"bufio"
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Release is one directory under BaseDir/releases on the board.
type Release struct {
	Name     string
	Complete bool              // all files verified (the .complete marker exists)
	Failed   bool              // it failed its health check once
	Files    map[string]string // name -> SHA-256, from its manifest (complete releases only)
}

// State is what the board holds: the releases and which one is current.
type State struct {
	Current  string    // release name the current symlink points at; "" if none
	Releases []Release // sorted oldest first (names start with a UTC time)
}

// Release returns the named release, or nil.
func (s *State) Release(name string) *Release {
	for i := range s.Releases {
		if s.Releases[i].Name == name {
			return &s.Releases[i]
		}
	}
	return nil
}

// ReadState lists the releases on the board in one round trip.
func (c *Conn) ReadState(ctx context.Context, l Layout) (*State, error) {
	l = l.withDefaults()
	script := fmt.Sprintf(`cur=$(readlink %s 2>/dev/null) && echo "current $cur"
cd %s 2>/dev/null || exit 0
for d in *; do
  [ -d "$d" ] || continue
  c=0; f=0
  [ -e "$d/%s" ] && c=1
  [ -e "$d/%s" ] && f=1
  echo "release $c $f $d"
  if [ $c = 1 ] && [ -f "$d/%s" ]; then sed "s|^|file $d |" "$d/%s"; fi
done
true
`, shq(l.currentLink()), shq(l.releasesDir()), completeName, failedName, manifestName, manifestName)
	out, err := c.Run(ctx, "sh -s", strings.NewReader(script))
	if err != nil {
		return nil, fmt.Errorf("list releases in %s: %w", l.releasesDir(), err)
	}
	return parseState(string(out))
}

// parseState reads ReadState's lines: "current <link target>", "release <complete 0|1>
// <failed 0|1> <name>" and "file <release> <sha256>  <name>". Directories whose names
// deploy would not have made are left out, so deploy never removes them.
func parseState(out string) (*State, error) {
	s := &State{}
	files := map[string]map[string]string{} // release -> name -> digest
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		switch kind {
		case "current":
			s.Current = path.Base(strings.TrimSuffix(rest, "/"))
		case "release":
			f := strings.SplitN(rest, " ", 3)
			if len(f) != 3 || (f[0] != "0" && f[0] != "1") || (f[1] != "0" && f[1] != "1") {
				return nil, fmt.Errorf("release list line %d: %q: want \"release <0|1> <0|1> <name>\"", n, sc.Text())
			}
			if !validReleaseName(f[2]) {
				continue
			}
			s.Releases = append(s.Releases, Release{Name: f[2], Complete: f[0] == "1", Failed: f[1] == "1"})
		case "file":
			rel, line, _ := strings.Cut(rest, " ")
			sum, name, ok := strings.Cut(line, "  ")
			if !ok || !isHexDigest(sum) || name == "" {
				return nil, fmt.Errorf("release list line %d: manifest of %s: %q is not \"<sha256>  <name>\"", n, rel, line)
			}
			if files[rel] == nil {
				files[rel] = map[string]string{}
			}
			files[rel][name] = sum
		default:
			return nil, fmt.Errorf("release list line %d: unexpected %q", n, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("release list: %w", err)
	}
	for i := range s.Releases {
		s.Releases[i].Files = files[s.Releases[i].Name]
	}
	slices.SortFunc(s.Releases, func(a, b Release) int { return strings.Compare(a.Name, b.Name) })
	return s, nil
}

func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validReleaseName accepts the names deploy makes and safe hand-made ones.
func validReleaseName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// previousRelease picks the release rollback returns to: the newest complete release
// older than current that never failed its health check.
func (s *State) previousRelease() string {
	for i := len(s.Releases) - 1; i >= 0; i-- {
		r := s.Releases[i]
		if r.Complete && !r.Failed && r.Name != s.Current && (s.Current == "" || r.Name < s.Current) {
			return r.Name
		}
	}
	return ""
}
