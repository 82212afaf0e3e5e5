package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteFile writes text to dir/name (a test's cfg, label or list file) and returns the
// path; a failed write is fatal to the test.
func WriteFile(tb testing.TB, dir, name, text string) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		tb.Fatalf("write test file: %v", err)
	}
	return p
}
