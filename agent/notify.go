package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notifier speaks systemd's sd_notify protocol: one datagram per state change to the
// unix socket named by $NOTIFY_SOCKET ("@name" is an abstract socket).
type Notifier struct {
	addr *net.UnixAddr
}

// NewNotifier returns a notifier for $NOTIFY_SOCKET, or nil when the daemon does not run
// under systemd with Type=notify (a nil *Notifier ignores every call).
func NewNotifier() *Notifier { return notifierFor(os.Getenv("NOTIFY_SOCKET")) }

func notifierFor(path string) *Notifier {
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Notify sends state lines such as "READY=1" or "WATCHDOG=1".
func (n *Notifier) Notify(state ...string) error {
	if n == nil {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(state, "\n"))); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// WatchdogInterval is how often to send WATCHDOG=1: half of $WATCHDOG_USEC, when set
// for this process ($WATCHDOG_PID absent or ours). ok is false without a watchdog.
func WatchdogInterval() (d time.Duration, ok bool, err error) {
	return watchdogFrom(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

func watchdogFrom(usec, pid string, self int) (time.Duration, bool, error) {
	if usec == "" {
		return 0, false, nil
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil {
			return 0, false, fmt.Errorf("WATCHDOG_PID %q: %w", pid, err)
		}
		if p != self {
			return 0, false, nil
		}
	}
	us, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || us == 0 {
		return 0, false, errors.Join(fmt.Errorf("WATCHDOG_USEC %q is not a positive integer", usec), err)
	}
	return time.Duration(us) * time.Microsecond / 2, true, nil
}
