package activate

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"
)

// Command is the "activate" subcommand of the agent binary (what deploy runs on the
// board): it parses args into a Plan, runs it, prints the record as JSON on out and
// fails unless the release was committed.
func Command(ctx context.Context, args []string, out, stderr io.Writer) error {
	var p Plan
	fs := flag.NewFlagSet("activate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&p.ID, "id", "", "names this activation in the record")
	fs.StringVar(&p.BaseDir, "base", "/opt/pynq-agent", "base directory (releases/, current)")
	fs.StringVar(&p.Release, "release", "", "release to make current")
	fs.StringVar(&p.Previous, "previous", "", "release current points at now (empty on a first deploy)")
	fs.StringVar(&p.Service, "service", "pynq-agent", "systemd unit name without .service")
	fs.StringVar(&p.UnitDir, "unit-dir", "/etc/systemd/system", "where the release's unit file goes")
	fs.StringVar(&p.Systemctl, "systemctl", "systemctl", "systemctl command (run with sh -c)")
	fs.StringVar(&p.Journalctl, "journalctl", "journalctl", "journalctl command (run with sh -c)")
	fs.StringVar(&p.HealthURL, "health-url", "http://127.0.0.1:8080/healthz", "the agent's health endpoint")
	fs.StringVar(&p.Want, "want", "", "text a healthy answer of the release contains (its version)")
	fs.DurationVar(&p.Timeout, "timeout", 60*time.Second, "how long the release has to answer healthy")
	fs.DurationVar(&p.LockWait, "lock-wait", 60*time.Second, "how long to wait for a deploy holding the lock")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: pynq-agent activate -id ID -release NAME [-previous NAME] [flags]\n\n"+
			"Switches the board to a release and keeps it only if it answers healthy (run by pynqctl deploy).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if p.ID == "" || p.Release == "" || fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("activate: -id and -release are required, and no arguments")
	}
	// The host's session may end at any moment: a hang-up must not end the switch.
	signal.Ignore(syscall.SIGHUP)
	rec := Run(ctx, p, stderr)
	fmt.Fprintf(out, "%s %s\n", rec.State, rec.Release)
	if rec.State != Committed {
		return fmt.Errorf("activate %s: %s: %s", rec.Release, rec.State, rec.Error)
	}
	return nil
}
