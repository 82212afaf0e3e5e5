package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/fpgadetector/pynq-agent/deploy"
	"github.com/fpgadetector/pynq-agent/internal/humanize"
)

func init() {
	rootCommands = append(rootCommands, newDeployCmd, newStatusCmd, newLogsCmd, newRollbackCmd)
}

// boardFlags are the connection and layout flags every board command shares.
type boardFlags struct {
	host, user     string
	port           int
	identity       []string
	knownHosts     string
	acceptNewHost  bool
	layout         deploy.Layout
	allowArch      []string
	healthTimeout  time.Duration
	connectTimeout time.Duration
}

func (f *boardFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	d := deploy.DefaultLayout()
	fs.StringVar(&f.host, "host", "pynq", "board host name or address")
	fs.StringVar(&f.user, "user", "xilinx", "login user on the board")
	fs.IntVar(&f.port, "port", 22, "SSH port")
	fs.StringArrayVar(&f.identity, "identity", nil, "private key file (default: ~/.ssh/id_ed25519, id_ecdsa, id_rsa, plus ssh-agent)")
	fs.StringVar(&f.knownHosts, "known-hosts", filepath.Join(homeDir(), ".ssh", "known_hosts"), "known_hosts file the board's host key is checked against")
	fs.BoolVar(&f.acceptNewHost, "accept-new-host-key", false, "trust and record the board's host key if known_hosts has none (trust on first use)")
	fs.StringVar(&f.layout.BaseDir, "base-dir", d.BaseDir, "agent directory on the board (releases/, current)")
	fs.StringVar(&f.layout.Service, "service", d.Service, "systemd unit name")
	fs.StringVar(&f.layout.UnitDir, "unit-dir", d.UnitDir, "directory for the unit file on the board")
	fs.StringVar(&f.layout.Systemctl, "systemctl", d.Systemctl, "service manager command prefix on the board")
	fs.StringVar(&f.layout.Journalctl, "journalctl", d.Journalctl, "journal command prefix on the board")
	fs.StringVar(&f.layout.Sudo, "sudo", d.Sudo, "sudo command for a non-root login user (deploy adds -n, or -S with the password)")
	fs.StringVar(&f.layout.AgentAddr, "agent-addr", d.AgentAddr, "the agent's HTTP address as seen on the board")
	fs.StringSliceVar(&f.allowArch, "allow-arch", []string{"armv7l"}, "board architectures (uname -m) to accept")
	fs.DurationVar(&f.healthTimeout, "health-timeout", 60*time.Second, "how long a new release has to answer /healthz")
	fs.DurationVar(&f.connectTimeout, "connect-timeout", 15*time.Second, "SSH connect and handshake timeout")
}

func (f *boardFlags) target(log *slog.Logger) deploy.Target {
	ids := f.identity
	if len(ids) == 0 {
		for _, k := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			ids = append(ids, filepath.Join(homeDir(), ".ssh", k))
		}
	}
	t := deploy.Target{
		Host: f.host, Port: f.port, User: f.user,
		Identities:       ids,
		AgentSocket:      os.Getenv("SSH_AUTH_SOCK"),
		Password:         f.password,
		KnownHosts:       f.knownHosts,
		AcceptNewHostKey: f.acceptNewHost,
		Timeout:          f.connectTimeout,
		Log:              log,
	}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		t.Passphrase = func(file string) ([]byte, error) {
			return prompt(fmt.Sprintf("passphrase for %s: ", file))
		}
	}
	return t
}

// password comes from PYNQ_SSH_PASSWORD (for scripts) or a terminal prompt.
func (f *boardFlags) password() (string, error) {
	if pw, ok := os.LookupEnv("PYNQ_SSH_PASSWORD"); ok {
		return pw, nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return "", fmt.Errorf("no password: set PYNQ_SSH_PASSWORD or use a key (--identity, ssh-agent)")
	}
	pw, err := prompt(fmt.Sprintf("%s@%s's password: ", f.user, f.host))
	return string(pw), err
}

func prompt(msg string) ([]byte, error) {
	fmt.Fprint(os.Stderr, msg)
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	return b, err
}

func (f *boardFlags) options(log *slog.Logger) deploy.Options {
	return deploy.Options{
		Layout:        f.layout,
		AllowArch:     f.allowArch,
		HealthTimeout: f.healthTimeout,
		Out:           os.Stdout,
		Log:           log,
		SudoPassword:  f.sudoPassword,
	}
}

// sudoPassword comes from PYNQ_SUDO_PASSWORD, else PYNQ_SSH_PASSWORD (on a PYNQ image
// both are the xilinx user's), else a terminal prompt.
func (f *boardFlags) sudoPassword() (string, error) {
	for _, env := range []string{"PYNQ_SUDO_PASSWORD", "PYNQ_SSH_PASSWORD"} {
		if pw, ok := os.LookupEnv(env); ok {
			return pw, nil
		}
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return "", fmt.Errorf("sudo on the board wants a password: set PYNQ_SUDO_PASSWORD, or allow passwordless sudo for %s", f.user)
	}
	pw, err := prompt(fmt.Sprintf("[sudo] password for %s on %s: ", f.user, f.host))
	return string(pw), err
}

func (f *boardFlags) dial(ctx context.Context, log *slog.Logger) (*deploy.Conn, error) {
	return deploy.Dial(ctx, f.target(log))
}

func homeDir() string {
	h, err := os.UserHomeDir()
	if err != nil {
		return "."
	}
	return h
}

func newDeployCmd(log *slog.Logger) *cobra.Command {
	var (
		bf          boardFlags
		src         deploy.Sources
		agentBinary string
		dryRun      bool
		keep        int
	)
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Install the agent, bitstream, model and config on the board as a new release",
		Long: `Cross-compiles pynq-agent for the board (linux/arm, GOARM=7) unless --agent-binary is
given, uploads a new release to <base-dir>/releases/<version>/ over SFTP (files the board
already has are reused; a login user that is not root uploads into its own directory and
root copies the files, so releases are owned by root), verifies every SHA-256 on the board,
then starts the switch on the board itself ("pynq-agent activate", detached from the SSH
session): it installs the release's systemd unit, switches <base-dir>/current, restarts and
waits for /healthz, and switches back on its own when the release does not come up, whether
or not this connection lasts. pynqctl watches it and shows a failed release's last log lines;
"pynqctl status" shows how the last switch ended.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			src.AgentBinary = agentBinary
			if src.AgentBinary == "" {
				bin, cleanup, err := deploy.BuildAgentHere(ctx, log)
				if err != nil {
					return err
				}
				defer cleanup()
				src.AgentBinary = bin
			}
			bundle, err := deploy.Collect(src)
			if err != nil {
				return err
			}
			opts := bf.options(log)
			opts.DryRun, opts.Keep = dryRun, keep
			c, err := bf.dial(ctx, log)
			if err != nil && dryRun { // the plan for a board without releases
				log.Warn("board not reachable: planning for a board without releases (every file uploaded)", "err", err)
				_, err = deploy.PlanOffline(bundle, opts)
				return err
			}
			if err != nil {
				return err
			}
			defer c.Close()
			bar := newTermBar(progressbar.OptionSetDescription("upload"), progressbar.OptionShowBytes(true))
			opts.Progress = bar.set
			start := time.Now()
			res, err := deploy.Deploy(ctx, c, bundle, opts)
			bar.finish()
			if err != nil {
				return err
			}
			if !res.DryRun {
				fmt.Printf("deployed %s in %s (uploaded %d file(s), %s; reused %d)\n",
					res.Version, time.Since(start).Round(time.Millisecond), res.Uploaded, humanize.Bytes(res.BytesUploaded), res.Linked)
			}
			return nil
		},
	}
	bf.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&src.Config, "config", "", "agent TOML config (installed as agent.toml)")
	fs.StringVar(&src.Bitstream, "bitstream", "", "bitstream .bit (its .hwh must sit beside it)")
	fs.StringVar(&src.ModelDir, "model", "", "model parameter directory (installed as model/)")
	fs.StringVar(&agentBinary, "agent-binary", "", "use this agent executable instead of cross-compiling ./cmd/pynq-agent")
	fs.BoolVar(&dryRun, "dry-run", false, "print the plan (files, sizes, what is reused) and change nothing")
	fs.IntVar(&keep, "keep", 3, "releases to keep on the board, the current one included")
	return cmd
}

// newBoardCmd is a board command without arguments: it registers bf's flags and runs
// run on a connection to the board, closed when run returns.
func newBoardCmd(log *slog.Logger, bf *boardFlags, use, short string, run func(ctx context.Context, c *deploy.Conn) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := bf.dial(cmd.Context(), log)
			if err != nil {
				return err
			}
			defer c.Close()
			return run(cmd.Context(), c)
		},
	}
	bf.register(cmd)
	return cmd
}

func newStatusCmd(log *slog.Logger) *cobra.Command {
	var bf boardFlags
	return newBoardCmd(log, &bf, "status", "Show the board's current release, unit state and the agent's status",
		func(ctx context.Context, c *deploy.Conn) error {
			st, err := deploy.GetStatus(ctx, c, bf.layout)
			if err != nil {
				return err
			}
			st.Format(os.Stdout)
			return nil
		})
}

func newLogsCmd(log *slog.Logger) *cobra.Command {
	var (
		bf     boardFlags
		follow bool
		lines  int
	)
	cmd := newBoardCmd(log, &bf, "logs", "Show the agent's journal on the board",
		func(ctx context.Context, c *deploy.Conn) error {
			return deploy.Logs(ctx, c, bf.options(log), lines, follow, os.Stdout)
		})
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	cmd.Flags().IntVarP(&lines, "lines", "n", 50, "number of recent lines")
	return cmd
}

func newRollbackCmd(log *slog.Logger) *cobra.Command {
	var (
		bf     boardFlags
		dryRun bool
	)
	cmd := newBoardCmd(log, &bf, "rollback", "Switch the board back to the previous release, restart and check health",
		func(ctx context.Context, c *deploy.Conn) error {
			opts := bf.options(log)
			opts.DryRun = dryRun
			res, err := deploy.Rollback(ctx, c, opts)
			if err != nil {
				return err
			}
			if !res.DryRun {
				fmt.Printf("rolled back from %s to %s\n", res.Previous, res.Version)
			}
			return nil
		})
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say which release would become current and change nothing")
	return cmd
}
