package deploy

import (
	"fmt"
	"strings"
	"testing"
)

// TestDirBatch: copies that keep their names become one command per directory and
// batch of batchFiles sources; a copy that renames gets its own.
func TestDirBatch(t *testing.T) {
	var d dirBatch
	for i := range batchFiles + 1 {
		d.add(fmt.Sprintf("/old/m/f%d", i), fmt.Sprintf("/new/m/f%d", i))
	}
	d.add("/old/a.bit", "/new/a.bit")
	d.add("/old/m/f0", "/new/b.bin") // same content, another name
	var s strings.Builder
	d.write(&s, func(srcs, dst string) string { return "ln " + srcs + " " + dst })
	lines := strings.Split(strings.TrimSpace(s.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d commands, want 4:\n%s", len(lines), s.String())
	}
	if n := strings.Count(lines[0], "/old/m/f"); n != batchFiles || !strings.HasSuffix(lines[0], " /new/m/") {
		t.Errorf("first batch: %d sources, ends %q", n, lines[0][len(lines[0])-12:])
	}
	if lines[1] != "ln /old/m/f200 /new/m/" || lines[2] != "ln /old/a.bit /new/" || lines[3] != "ln /old/m/f0 /new/b.bin" {
		t.Errorf("commands:\n%s", strings.Join(lines[1:], "\n"))
	}
}
