package todarknet

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// trainSections are the sections whose training options (learning rate, schedule,
// augmentation, loss weights) the IR does not hold.
var trainSections = map[string]bool{"net": true, "region": true, "yolo": true}

// MergeTrainingKeys adds to a written cfg the keys of the [net], [region] and [yolo]
// sections of a template cfg (e.g. the cfg the model was trained with) that the written
// cfg lacks: darknet's training options, which the IR does not hold. Sections are paired
// by kind and order ([yolo] n with [yolo] n); keys the written cfg has are kept. It
// returns the new cfg and the keys it added, as "section: key".
func MergeTrainingKeys(cfg, template []byte) ([]byte, []string, error) {
	tmpl, err := sectionKeys(template)
	if err != nil {
		return nil, nil, fmt.Errorf("training keys: template: %w", err)
	}
	var out bytes.Buffer
	var added []string
	seen := map[string]int{}
	var kind string
	var lines []string // the current section (or the preamble)
	flush := func() {
		end := len(lines) // after the section's last key line, before trailing comments
		for end > 0 && (strings.TrimSpace(lines[end-1]) == "" || isComment(lines[end-1])) {
			end--
		}
		have := map[string]bool{}
		for _, l := range lines {
			if key, _, ok := strings.Cut(l, "="); ok && !isComment(l) {
				have[strings.TrimSpace(key)] = true
			}
		}
		var extra []string
		if trainSections[kind] && seen[kind] <= len(tmpl[kind]) {
			for _, kv := range tmpl[kind][seen[kind]-1] {
				if !have[kv[0]] {
					have[kv[0]] = true // a key the template repeats goes in once
					extra = append(extra, kv[0]+"="+kv[1])
					added = append(added, kind+": "+kv[0])
				}
			}
		}
		for _, l := range append(append(lines[:end:end], extra...), lines[end:]...) {
			out.WriteString(l)
			out.WriteByte('\n')
		}
		lines = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(cfg))
	for sc.Scan() {
		line := sc.Text()
		if k, ok := sectionKind(line); ok {
			flush()
			kind = k
			seen[kind]++
		}
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("training keys: %w", err)
	}
	flush()
	return out.Bytes(), added, nil
}

// sectionKeys lists each training section's key=value pairs, per kind in file order.
func sectionKeys(cfg []byte) (map[string][][][2]string, error) {
	out := map[string][][][2]string{}
	var kind string
	sc := bufio.NewScanner(bytes.NewReader(cfg))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || isComment(line) {
			continue
		}
		if k, ok := sectionKind(line); ok {
			kind = k
			out[kind] = append(out[kind], nil)
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || kind == "" {
			return nil, fmt.Errorf("line %d: %q is not key=value inside a section", n, line)
		}
		secs := out[kind]
		secs[len(secs)-1] = append(secs[len(secs)-1], [2]string{strings.TrimSpace(key), strings.TrimSpace(val)})
	}
	return out, sc.Err()
}

func sectionKind(line string) (string, bool) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "[") || !strings.HasSuffix(line, "]") {
		return "", false
	}
	k := strings.TrimSpace(line[1 : len(line)-1])
	if k == "network" {
		k = "net"
	}
	return k, true
}

func isComment(line string) bool {
	line = strings.TrimSpace(line)
	return strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";")
}
