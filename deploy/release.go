package deploy

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Names inside a release directory.
const (
	BinaryName   = "pynq-agent"      // the agent executable
	ConfigName   = "agent.toml"      // the agent's config, whatever its local name
	ModelDirName = "model"           // the model parameter directory
	manifestName = "manifest.sha256" // sha256sum -c format, written once all files verify
	completeName = ".complete"       // marker: the release is whole
	failedName   = ".failed"         // marker: the release failed its health check
)

// Sources are the host files a release is made of. Only AgentBinary is required.
type Sources struct {
	AgentBinary string // the agent executable for the board
	Config      string // agent TOML config, uploaded as agent.toml
	Bitstream   string // X.bit; X.hwh must sit beside it
	ModelDir    string // model parameters, uploaded under model/
}

// File is one file of a release.
type File struct {
	Name   string      // slash-separated path inside the release directory
	Local  string      // path on the host
	Size   int64       // bytes
	Mode   fs.FileMode // permission bits on the board
	SHA256 string      // hex digest
}

// Bundle is a release assembled on the host.
type Bundle struct {
	Files   []File
	Content string // SHA-256 over the names and digests of all files
	BinArch string // the agent binary's ELF machine as uname -m would say it ("armv7l")
}

// Collect hashes the sources into a bundle.
func Collect(src Sources) (*Bundle, error) {
	if src.AgentBinary == "" {
		return nil, fmt.Errorf("no agent binary given")
	}
	var files []File
	add := func(name, local string, mode fs.FileMode) error {
		f, err := hashFile(local)
		if err != nil {
			return err
		}
		f.Name, f.Mode = name, mode
		files = append(files, f)
		return nil
	}
	if err := add(BinaryName, src.AgentBinary, 0o755); err != nil {
		return nil, fmt.Errorf("agent binary: %w", err)
	}
	if src.Config != "" {
		if err := add(ConfigName, src.Config, 0o644); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	if src.Bitstream != "" {
		if !strings.HasSuffix(src.Bitstream, ".bit") {
			return nil, fmt.Errorf("bitstream %s: want a .bit file", src.Bitstream)
		}
		hwh := strings.TrimSuffix(src.Bitstream, ".bit") + ".hwh"
		if err := add(filepath.Base(src.Bitstream), src.Bitstream, 0o644); err != nil {
			return nil, fmt.Errorf("bitstream: %w", err)
		}
		if err := add(filepath.Base(hwh), hwh, 0o644); err != nil {
			return nil, fmt.Errorf("bitstream's hardware handoff (the .hwh must sit beside the .bit): %w", err)
		}
	}
	if src.ModelDir != "" {
		model, err := collectDir(src.ModelDir, ModelDirName)
		if err != nil {
			return nil, err
		}
		files = append(files, model...)
	}
	if err := checkNames(files); err != nil {
		return nil, err
	}
	arch, err := elfArch(src.AgentBinary)
	if err != nil {
		return nil, fmt.Errorf("agent binary %s: %w", src.AgentBinary, err)
	}
	return &Bundle{Files: files, Content: contentHash(files), BinArch: arch}, nil
}

// collectDir hashes every regular file under dir, named prefix/relative/path.
func collectDir(dir, prefix string) ([]File, error) {
	var files []File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file (symlinks and devices are not uploaded)", p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f, err := hashFile(p)
		if err != nil {
			return err
		}
		f.Name, f.Mode = prefix+"/"+filepath.ToSlash(rel), 0o644
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("model directory: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("model directory %s is empty", dir)
	}
	return files, nil
}

// checkNames refuses names the remote shell scripts and manifests cannot carry.
func checkNames(files []File) error {
	seen := map[string]bool{}
	for _, f := range files {
		if strings.ContainsAny(f.Name, "\n\r\\") {
			return fmt.Errorf("file name %q: newlines and backslashes are not allowed", f.Name)
		}
		if f.Name == manifestName || f.Name == completeName || f.Name == failedName {
			return fmt.Errorf("file name %q is reserved for release bookkeeping", f.Name)
		}
		if seen[f.Name] {
			return fmt.Errorf("two files map to %q in the release (rename one)", f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}

func hashFile(p string) (File, error) {
	fh, err := os.Open(p)
	if err != nil {
		return File{}, err
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return File{}, fmt.Errorf("read %s: %w", p, err)
	}
	return File{Local: p, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func contentHash(files []File) string {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	h := sha256.New()
	for _, f := range sorted {
		fmt.Fprintf(h, "%s  %s %o\n", f.SHA256, f.Name, f.Mode)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// manifest renders files in `sha256sum -c` format.
func manifest(files []File) string {
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "%s  %s\n", f.SHA256, f.Name)
	}
	return b.String()
}

// releaseVersion names a release: UTC time (so names sort by age) and content hash.
func releaseVersion(now time.Time, content string) string {
	return now.UTC().Format("20060102-150405.000") + "-" + content[:10]
}

// elfArch reports an ELF executable's machine as uname -m names it.
func elfArch(p string) (string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return "", fmt.Errorf("not an ELF executable (%w): is it a Linux build?", err)
	}
	defer f.Close()
	switch f.Machine {
	case elf.EM_ARM:
		return "armv7l", nil
	case elf.EM_AARCH64:
		return "aarch64", nil
	case elf.EM_X86_64:
		return "x86_64", nil
	case elf.EM_386:
		return "i686", nil
	case elf.EM_RISCV:
		return "riscv64", nil
	}
	return f.Machine.String(), nil
}

// archMatches says whether a binary for binArch runs on a board reporting boardArch.
func archMatches(binArch, boardArch string) bool {
	if binArch == boardArch {
		return true
	}
	switch binArch {
	case "armv7l": // GOARM=7 binaries also run on armv8l kernels in 32-bit mode
		return boardArch == "armv8l" || boardArch == "armv7l"
	case "i686":
		return boardArch == "i386" || boardArch == "i586"
	}
	return false
}

// BuildAgent cross-compiles ./cmd/pynq-agent of the module at moduleDir for the board
// (linux/arm, GOARM=7, no cgo) into out.
func BuildAgent(ctx context.Context, moduleDir, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./cmd/pynq-agent")
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm", "GOARM=7", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cross-compile the agent in %s: %w\n%s", moduleDir, err, b)
	}
	return nil
}

// BuildAgentHere cross-compiles the agent of the module around the working directory
// into a temporary directory, which cleanup removes.
func BuildAgentHere(ctx context.Context, log *slog.Logger) (bin string, cleanup func(), err error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", nil, err
	}
	mod, err := FindModule(wd)
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "pynqctl-agent")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	bin = filepath.Join(dir, BinaryName)
	log.Info("cross-compiling the agent", "module", mod, "target", "linux/arm GOARM=7")
	if err := BuildAgent(ctx, mod, bin); err != nil {
		cleanup()
		return "", nil, err
	}
	return bin, cleanup, nil
}

// FindModule walks up from dir to the directory holding go.mod.
func FindModule(dir string) (string, error) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory: run pynqctl deploy inside the pynq-agent checkout or pass --agent-binary")
		}
		dir = parent
	}
}
