package web

import (
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// serveLimited serves h on a loopback listener capped at max connections.
func serveLimited(t *testing.T, max int, h http.Handler) (*ConnLimit, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := LimitConns(ln, max)
	l.Grace = 50 * time.Millisecond
	srv := &http.Server{Handler: h, ConnState: l.ConnState}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l, ln.Addr().String()
}

func getOnce(t *testing.T, addr string) (int, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	r, err := c.Get("http://" + addr + "/")
	if err != nil {
		return 0, err
	}
	defer r.Body.Close()
	io.Copy(io.Discard, r.Body)
	return r.StatusCode, nil
}

// Silent connections fill the cap; a client with a request still gets in, because the
// longest-idle silent connection is closed for it.
func TestConnLimitEvictsIdleConnections(t *testing.T) {
	l, addr := serveLimited(t, 4, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	var idle []net.Conn
	for range 10 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
		defer c.Close()
	}
	for i := range 5 {
		if code, err := getOnce(t, addr); err != nil || code != 200 {
			t.Fatalf("request %d with the cap full of idle connections: %d %v", i, code, err)
		}
	}
	open, evicted := l.Stats()
	if open > 4 || evicted < 6 {
		t.Errorf("%d open, %d evicted; want at most 4 open and the idle ones closed to make room", open, evicted)
	}
	// The first silent connections were the ones closed.
	idle[0].SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := idle[0].Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("oldest idle connection: read %v, want EOF (closed by the server)", err)
	}
}

// Connections with a request in progress are never closed: at the cap, the next
// connection waits until one of them ends.
func TestConnLimitWaitsForBusyConnections(t *testing.T) {
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(2)
	_, addr := serveLimited(t, 2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started.Done()
			<-release
		}
	}))
	slow := make(chan error, 2)
	for range 2 {
		go func() {
			c := &http.Client{Transport: &http.Transport{}} // a connection each
			r, err := c.Get("http://" + addr + "/slow")
			if err == nil {
				r.Body.Close()
			}
			slow <- err
		}()
	}
	started.Wait()
	fast := make(chan error, 1)
	go func() { _, err := getOnce(t, addr); fast <- err }()
	select {
	case err := <-fast:
		t.Fatalf("a third request was served while 2 busy connections held the cap of 2 (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	for range 2 {
		if err := <-slow; err != nil {
			t.Errorf("busy request: %v", err)
		}
	}
	if err := <-fast; err != nil {
		t.Errorf("waiting request after the busy ones ended: %v", err)
	}
}
