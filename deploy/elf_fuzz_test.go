package deploy

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzELFArch: any file given as the agent binary gets an architecture or an error,
// never a panic.
func FuzzELFArch(f *testing.F) {
	f.Add([]byte("\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00\x01\x00\x00\x00"))
	f.Add([]byte("#!/bin/sh\n"))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "agent")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		arch, err := elfArch(p)
		if err == nil && arch == "" {
			t.Fatal("no architecture and no error")
		}
	})
}
