// Package testutil owns helpers shared by the project's tests: locating the repository,
// its testdata and the shared fixtures beside the checkout.
package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot returns the directory holding go.mod, walking up from the working directory.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Testdata returns the path of a file under the repository's testdata directory.
func Testdata(tb testing.TB, elem ...string) string {
	tb.Helper()
	return filepath.Join(append([]string{RepoRoot(tb), "testdata"}, elem...)...)
}

// FixturesDir returns ../shared/fixtures beside the checkout (or $PYNQ_FIXTURES), skipping
// the test when it is absent: fixtures live on developer machines and in CI only.
func FixturesDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("PYNQ_FIXTURES")
	if dir == "" {
		dir = filepath.Join(RepoRoot(tb), "..", "shared", "fixtures")
	}
	if _, err := os.Stat(dir); err != nil {
		tb.Skipf("shared fixtures not found at %s (set PYNQ_FIXTURES): %v", dir, err)
	}
	return dir
}

// Fixture returns the path of a file under the shared fixtures, skipping the test when
// that file is absent.
func Fixture(tb testing.TB, elem ...string) string {
	tb.Helper()
	p := filepath.Join(append([]string{FixturesDir(tb)}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("fixture %s not found: %v", p, err)
	}
	return p
}

// FixturePhotos lists every JPEG photo of the shared fixtures (the QNN-MO samples and the
// chair photos), skipping the test when there are none.
func FixturePhotos(tb testing.TB) []string {
	tb.Helper()
	dir := FixturesDir(tb)
	var files []string
	for _, pat := range []string{"qnn-mo-pynq/images/*.jpg", "chairs/val/*.jpg", "chairs/calibration/*.jpg"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		tb.Skipf("no photos under %s", dir)
	}
	return files
}
