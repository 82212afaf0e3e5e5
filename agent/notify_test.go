package agent

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestNotifyRealSocket sends READY/WATCHDOG/STOPPING to a real unixgram socket, the
// way systemd listens on $NOTIFY_SOCKET.
func TestNotifyRealSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	n := NewNotifier()
	if n == nil {
		t.Fatal("no notifier with NOTIFY_SOCKET set")
	}
	for _, want := range []string{"READY=1\nSTATUS=processing frames", "WATCHDOG=1", "STOPPING=1"} {
		lines := []string{want}
		if want == "READY=1\nSTATUS=processing frames" {
			lines = []string{"READY=1", "STATUS=processing frames"}
		}
		if err := n.Notify(lines...); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, _, err := conn.ReadFromUnix(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:k]); got != want {
			t.Errorf("datagram %q, want %q", got, want)
		}
	}
}

func TestNotifyAbsentAndAbstract(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if n := NewNotifier(); n != nil || n.Notify("READY=1") != nil {
		t.Error("without NOTIFY_SOCKET notify must be a silent no-op")
	}
	// An abstract socket ("@name").
	name := "pynq-agent-test-" + strconv.Itoa(time.Now().Nanosecond())
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "\x00" + name, Net: "unixgram"})
	if err != nil {
		t.Skipf("abstract sockets: %v", err)
	}
	defer conn.Close()
	if err := notifierFor("@" + name).Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if k, _, err := conn.ReadFromUnix(buf); err != nil || string(buf[:k]) != "READY=1" {
		t.Errorf("%q %v", buf[:k], err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	if d, ok, err := watchdogFrom("", "", 1); ok || err != nil || d != 0 {
		t.Error("no watchdog without WATCHDOG_USEC")
	}
	if d, ok, err := watchdogFrom("20000000", "", 1); !ok || err != nil || d != 10*time.Second {
		t.Errorf("20 s watchdog: %v %v %v, want ping every 10 s", d, ok, err)
	}
	if _, ok, _ := watchdogFrom("20000000", "42", 1); ok {
		t.Error("watchdog meant for another pid used")
	}
	if d, ok, err := watchdogFrom("3000000", "7", 7); !ok || err != nil || d != 1500*time.Millisecond {
		t.Errorf("%v %v %v", d, ok, err)
	}
	for _, bad := range []string{"x", "0", "-5"} {
		if _, ok, err := watchdogFrom(bad, "", 1); ok || err == nil {
			t.Errorf("WATCHDOG_USEC=%q accepted", bad)
		}
	}
}
