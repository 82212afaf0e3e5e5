package deploy

import (
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// sudoLogin is the account scripts/install-test-deps.sh makes: not root, passwordless
// sudo, as the xilinx user of a PYNQ image.
const sudoLogin = "pynq-deploy-test"

// A login user that is not root deploys through sudo: every file of every release ends
// up owned by root and writable by nobody else, so that user cannot change what the
// unit runs as root.
func TestDeployAsSudoUserLeavesRootOwnedReleases(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("sshd must run as root to let another user log in")
	}
	if _, err := user.Lookup(sudoLogin); err != nil {
		t.Skipf("user %s missing (scripts/install-test-deps.sh makes it): %v", sudoLogin, err)
	}
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Skip("sudo is not installed (scripts/install-test-deps.sh installs it)")
	}
	b := startBoard(t)
	// sshd reads authorized_keys, and SFTP writes the upload, as the login user.
	for d := b.dir; d != filepath.Dir(os.TempDir()); d = filepath.Dir(d) {
		if d == os.TempDir() {
			break
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(b.dir, "authorized_keys"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The login user runs the systemctl stand-in too (deploy asks for its version): a
	// copy beside the keys, since the checkout may lie where that user cannot read.
	shim, err := os.ReadFile("testdata/servicectl.sh")
	if err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(b.dir, "servicectl.sh")
	mustWrite(t, own, shim, 0o755)
	abs, err := filepath.Abs("testdata/servicectl.sh")
	if err != nil {
		t.Fatal(err)
	}
	b.layout.Systemctl = strings.Replace(b.layout.Systemctl, abs, own, 1)
	b.layout.Journalctl = strings.Replace(b.layout.Journalctl, abs, own, 1)
	tgt := b.target()
	tgt.User = sudoLogin
	model := t.TempDir()
	mustWrite(t, filepath.Join(model, "sub", "w.bin"), []byte("weights"), 0o644)
	res, err := b.deploy(b.bundle(model, "label = a"), tgt, b.options())
	if err != nil {
		t.Fatalf("deploy as %s: %v", sudoLogin, err)
	}
	if !res.Facts.Sudo || res.Facts.UID == 0 {
		t.Fatalf("facts %s: want a sudo user", res.Facts)
	}
	b.checkServing(t, "a")
	mustWrite(t, filepath.Join(model, "sub", "w.bin"), []byte("weights 2"), 0o644)
	if _, err := b.deploy(b.bundle(model, "label = b"), tgt, b.options()); err != nil {
		t.Fatalf("second deploy as %s: %v", sudoLogin, err)
	}
	b.checkServing(t, "b")
	checkRootOwned(t, b.layout.BaseDir)
	if ents, _ := os.ReadDir(b.layout.uploadDir()); len(ents) != 0 {
		t.Errorf("uploads left behind in %s: %v", b.layout.uploadDir(), ents)
	}
}

// checkRootOwned walks base (the upload directory aside) and fails on anything not
// owned by root or writable by group or others.
func checkRootOwned(t *testing.T, base string) {
	t.Helper()
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(p, filepath.Join(base, ".upload")) {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 0 || (fi.Mode()&fs.ModeSymlink == 0 && fi.Mode().Perm()&0o022 != 0) {
			t.Errorf("%s: owner uid %d, mode %v; want root-owned, writable by root only", p, st.Uid, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
