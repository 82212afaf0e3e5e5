package deploy

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

var (
	// ErrUnknownHostKey: the board's host key is not in known_hosts and trusting it
	// was not asked for (--accept-new-host-key).
	ErrUnknownHostKey = errors.New("unknown host key")
	// ErrHostKeyChanged: known_hosts holds a different key for the board.
	ErrHostKeyChanged = errors.New("host key changed")
)

// hostKeyChecker checks server keys against one known_hosts file and, when allowed,
// appends keys of hosts seen for the first time.
type hostKeyChecker struct {
	path      string
	acceptNew bool
	known     ssh.HostKeyCallback
	log       *slog.Logger
}

func newHostKeyChecker(path string, acceptNew bool, log *slog.Logger) (*hostKeyChecker, error) {
	if path == "" {
		return nil, fmt.Errorf("no known_hosts file given (pass --known-hosts)")
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create known_hosts directory: %w", err)
		}
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			return nil, fmt.Errorf("create known_hosts: %w", err)
		}
	}
	known, err := knownhosts.New(path)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts %s: %w (fix or remove the bad line)", path, err)
	}
	return &hostKeyChecker{path: path, acceptNew: acceptNew, known: known, log: log}, nil
}

// check is the ssh.HostKeyCallback.
func (h *hostKeyChecker) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := h.known(hostname, remote, key)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		var re *knownhosts.RevokedError
		if errors.As(err, &re) {
			return fmt.Errorf("%w: %s key %s for %s is marked revoked in %s:%d", ErrHostKeyChanged,
				key.Type(), ssh.FingerprintSHA256(key), hostname, re.Revoked.Filename, re.Revoked.Line)
		}
		return err
	}
	if len(ke.Want) > 0 {
		return changedKeyError(hostname, key, ke.Want)
	}
	if !h.acceptNew {
		return fmt.Errorf("%w for %s: %s %s is not in %s; compare it with the board's key "+
			"(ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub on the board) and rerun with --accept-new-host-key",
			ErrUnknownHostKey, hostname, key.Type(), ssh.FingerprintSHA256(key), h.path, keyFileKind(key))
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
	f, err := os.OpenFile(h.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("record host key in %s: %w", h.path, err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		return fmt.Errorf("record host key in %s: %w", h.path, err)
	}
	h.log.Warn("trusting new host key", "host", hostname, "key", ssh.FingerprintSHA256(key), "known_hosts", h.path)
	return nil
}

func changedKeyError(hostname string, key ssh.PublicKey, want []knownhosts.KnownKey) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%v for %s: the server offers %s %s, but", ErrHostKeyChanged, hostname, key.Type(), ssh.FingerprintSHA256(key))
	for i, k := range want {
		if i > 0 {
			b.WriteString(" and")
		}
		fmt.Fprintf(&b, " %s:%d has %s %s", k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key))
	}
	fmt.Fprintf(&b, "; if the board was reinstalled, remove that line (ssh-keygen -R '%s' -f %s) and rerun with --accept-new-host-key; otherwise someone may be intercepting the connection",
		knownhosts.Normalize(hostname), want[0].Filename)
	return &hostKeyError{msg: b.String()}
}

type hostKeyError struct{ msg string }

func (e *hostKeyError) Error() string { return e.msg }
func (e *hostKeyError) Unwrap() error { return ErrHostKeyChanged }

func keyFileKind(key ssh.PublicKey) string {
	switch key.Type() {
	case ssh.KeyAlgoED25519:
		return "ed25519"
	case ssh.KeyAlgoRSA:
		return "rsa"
	default:
		return "ecdsa"
	}
}

// algorithmsFor lists the host key algorithms known_hosts already has for addr, so the
// server is asked for the key type we can check rather than one we have never seen
// (which would look like a changed key). Nil lets the library choose.
func (h *hostKeyChecker) algorithmsFor(addr string) []string {
	_, probe, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	signer, err := ssh.NewSignerFromKey(probe)
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(h.known(addr, &net.TCPAddr{}, signer.PublicKey()), &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		for _, a := range algorithmsOfKeyType(k.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

func algorithmsOfKeyType(t string) []string {
	if t == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{t}
}
