package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Target says where the board is and how to log in to it.
type Target struct {
	Host string // host name or address
	Port int    // 0 means 22
	User string // login user ("xilinx" on a PYNQ image)

	// Identities are private key files tried in order (missing files are skipped).
	Identities []string
	// Passphrase is asked for an encrypted identity; nil skips encrypted keys.
	Passphrase func(file string) ([]byte, error)
	// AgentSocket is the ssh-agent socket (SSH_AUTH_SOCK); empty means no agent.
	AgentSocket string
	// Password is asked after keys and the agent failed; nil means no password login.
	Password func() (string, error)

	// KnownHosts is the known_hosts file host keys are checked against.
	KnownHosts string
	// AcceptNewHostKey trusts and records a host key seen for the first time.
	AcceptNewHostKey bool

	Timeout time.Duration // TCP connect + handshake; 0 means 15 s
	Log     *slog.Logger  // nil: discard
}

// Addr returns host:port.
func (t Target) Addr() string {
	port := t.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(port))
}

// Conn is one SSH connection to the board, with an SFTP session opened on first use.
type Conn struct {
	ssh  *ssh.Client
	sftp *sftp.Client
	user string
	addr string
	log  *slog.Logger
}

// Dial connects and authenticates to the target, checking its host key.
func Dial(ctx context.Context, t Target) (*Conn, error) {
	log := t.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := t.Timeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	addr := t.Addr()
	hk, err := newHostKeyChecker(t.KnownHosts, t.AcceptNewHostKey, log)
	if err != nil {
		return nil, err
	}
	auth, closeAgent := authMethods(t, log)
	defer closeAgent()
	cfg := &ssh.ClientConfig{
		User:              t.User,
		Auth:              auth,
		HostKeyCallback:   hk.check,
		HostKeyAlgorithms: hk.algorithmsFor(addr),
		Timeout:           timeout,
	}
	d := net.Dialer{Timeout: timeout}
	tcp, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w (is the board on and reachable? check --host/--port)", addr, err)
	}
	// The handshake has no context of its own: a deadline bounds it instead.
	_ = tcp.SetDeadline(time.Now().Add(timeout))
	cc, chans, reqs, err := ssh.NewClientConn(tcp, addr, cfg)
	if err != nil {
		tcp.Close()
		return nil, dialError(addr, t.User, err)
	}
	_ = tcp.SetDeadline(time.Time{})
	log.Debug("ssh connected", "addr", addr, "user", t.User)
	return &Conn{ssh: ssh.NewClient(cc, chans, reqs), user: t.User, addr: addr, log: log}, nil
}

// dialError keeps host-key errors as they are and adds a hint to authentication failures.
func dialError(addr, user string, err error) error {
	if errors.Is(err, ErrHostKeyChanged) || errors.Is(err, ErrUnknownHostKey) {
		return err
	}
	if strings.Contains(err.Error(), "unable to authenticate") {
		return fmt.Errorf("ssh %s@%s: %w (pass --identity KEY, load a key into ssh-agent, or set PYNQ_SSH_PASSWORD)", user, addr, err)
	}
	return fmt.Errorf("ssh %s: %w", addr, err)
}

// authMethods lists keys and the agent first, then the password; the returned function
// closes the agent socket once the handshake is over.
func authMethods(t Target, log *slog.Logger) ([]ssh.AuthMethod, func()) {
	var signers []ssh.Signer
	for _, f := range t.Identities {
		s, err := loadSigner(f, t.Passphrase)
		if err != nil {
			log.Warn("skipping identity", "file", f, "err", err)
			continue
		}
		if s != nil {
			signers = append(signers, s)
		}
	}
	closer := func() {}
	if t.AgentSocket != "" {
		if ac, err := net.Dial("unix", t.AgentSocket); err != nil {
			log.Warn("ssh-agent unreachable", "socket", t.AgentSocket, "err", err)
		} else {
			closer = func() { ac.Close() }
			if as, err := agent.NewClient(ac).Signers(); err == nil {
				signers = append(signers, as...)
			}
		}
	}
	var methods []ssh.AuthMethod
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if t.Password != nil {
		pw := oncePassword(t.Password)
		methods = append(methods,
			ssh.PasswordCallback(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range questions {
					p, err := pw()
					if err != nil {
						return nil, err
					}
					answers[i] = p
				}
				return answers, nil
			}))
	}
	return methods, closer
}

// oncePassword asks for the password at most once per connection.
func oncePassword(ask func() (string, error)) func() (string, error) {
	var (
		done bool
		pw   string
		err  error
	)
	return func() (string, error) {
		if !done {
			pw, err = ask()
			done = true
		}
		return pw, err
	}
}

// loadSigner reads a private key; a missing file gives (nil, nil).
func loadSigner(file string, passphrase func(string) ([]byte, error)) (ssh.Signer, error) {
	pem, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if passphrase == nil {
			return nil, fmt.Errorf("key is encrypted (add it to ssh-agent instead)")
		}
		pass, perr := passphrase(file)
		if perr != nil {
			return nil, perr
		}
		return ssh.ParsePrivateKeyWithPassphrase(pem, pass)
	}
	return s, err
}

// Close ends the SFTP session and the connection.
func (c *Conn) Close() error {
	if c.sftp != nil {
		c.sftp.Close()
	}
	return c.ssh.Close()
}

// User returns the login user.
func (c *Conn) User() string { return c.user }

// SFTP returns the connection's SFTP client, opening it on first use.
func (c *Conn) SFTP() (*sftp.Client, error) {
	if c.sftp != nil {
		return c.sftp, nil
	}
	// 128 KiB writes (OpenSSH's sftp-server takes messages up to 256 KiB) need a quarter
	// of the round trips of the 32 KiB default.
	s, err := sftp.NewClient(c.ssh, sftp.UseConcurrentWrites(true), sftp.MaxPacketUnchecked(128<<10))
	if err != nil {
		return nil, fmt.Errorf("start sftp on %s: %w (the board's sshd needs the sftp subsystem)", c.addr, err)
	}
	c.sftp = s
	return s, nil
}

// DialContext opens a TCP connection from the board's side (an SSH direct-tcpip
// channel), so the agent's HTTP port needs no opening in the board's firewall.
func (c *Conn) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return c.ssh.DialContext(ctx, network, addr)
}

// CommandError is a remote command that failed: its exit status and stderr.
type CommandError struct {
	Cmd    string
	Status int // -1 when the command did not exit normally
	Stderr string
	Err    error
}

func (e *CommandError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("remote %q: %s", shortCmd(e.Cmd), msg)
}

func (e *CommandError) Unwrap() error { return e.Err }

func shortCmd(cmd string) string {
	cmd = strings.Join(strings.Fields(cmd), " ")
	if len(cmd) > 80 {
		return cmd[:77] + "..."
	}
	return cmd
}

// Run runs a shell command on the board and returns its stdout.
func (c *Conn) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	var out bytes.Buffer
	err := c.Stream(ctx, cmd, stdin, &out)
	return out.Bytes(), err
}

// Stream runs a shell command on the board, copying its stdout to w as it arrives.
// Cancelling ctx closes the session.
func (c *Conn) Stream(ctx context.Context, cmd string, stdin io.Reader, w io.Writer) error {
	start := time.Now()
	defer func() { c.log.Debug("remote command", "cmd", shortCmd(cmd), "took", time.Since(start)) }()
	s, err := c.ssh.NewSession()
	if err != nil {
		return fmt.Errorf("ssh session on %s: %w (connection lost?)", c.addr, err)
	}
	defer s.Close()
	var stderr bytes.Buffer
	s.Stdin, s.Stdout, s.Stderr = stdin, w, &stderr
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = s.Signal(ssh.SIGTERM)
		s.Close()
		<-done
		return ctx.Err()
	}
	if err == nil {
		return nil
	}
	status := -1
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		status = ee.ExitStatus()
	}
	return &CommandError{Cmd: cmd, Status: status, Stderr: stderr.String(), Err: err}
}

// shq quotes s for a POSIX shell.
func shq(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
