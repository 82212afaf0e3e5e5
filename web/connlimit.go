package web

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// ConnLimit caps a server's open connections. At the cap, a new connection makes room
// by closing the one that has waited longest without a request in progress (accepted
// and silent, or keep-alive between requests), once it has been so for Grace: idle or
// slow-to-start connections cannot lock out clients with something to ask, as they do
// with a plain accept limit. Connections busy with a request or taken over (the feed's
// websockets) are never closed; with all of them busy, Accept waits for one to end or
// to go idle. Set the server's ConnState to ConnLimit.ConnState.
type ConnLimit struct {
	net.Listener
	// Grace is how long a connection may sit without a request before it may be closed
	// to make room (time to send its first request); LimitConns sets 500 ms.
	Grace   time.Duration
	max     int
	mu      sync.Mutex
	changed *sync.Cond
	open    map[*limitedConn]struct{}
	pending int // accepts in progress, counted against max
	evicted int
}

type limitedConn struct {
	net.Conn
	l         *ConnLimit
	once      sync.Once
	idle      bool      // no request in progress (new or keep-alive idle); l.mu
	idleSince time.Time // l.mu
}

// LimitConns wraps ln so that at most max connections are open.
func LimitConns(ln net.Listener, max int) *ConnLimit {
	l := &ConnLimit{Listener: ln, Grace: 500 * time.Millisecond, max: max, open: map[*limitedConn]struct{}{}}
	l.changed = sync.NewCond(&l.mu)
	return l
}

// Accept waits for room, making it by closing the longest-idle connection, then
// accepts.
func (l *ConnLimit) Accept() (net.Conn, error) {
	l.mu.Lock()
	for len(l.open)+l.pending >= l.max {
		victim, wait := l.longestIdle(time.Now())
		if victim == nil {
			if wait > 0 { // an idle one becomes closable then
				t := time.AfterFunc(wait, l.wake)
				l.changed.Wait()
				t.Stop()
			} else {
				l.changed.Wait()
			}
			continue
		}
		victim.idle = false // not picked twice while it closes
		l.evicted++
		l.mu.Unlock()
		victim.Close()
		l.mu.Lock()
	}
	l.pending++
	l.mu.Unlock()
	c, err := l.Listener.Accept()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending--
	if err != nil {
		l.changed.Broadcast()
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l, idle: true, idleSince: time.Now()}
	l.open[lc] = struct{}{}
	return lc, nil
}

// longestIdle is the open connection idle the longest, if that is Grace or more; else
// nil and how long until it will be (0 when none is idle). l.mu held.
func (l *ConnLimit) longestIdle(now time.Time) (*limitedConn, time.Duration) {
	var best *limitedConn
	for c := range l.open {
		if c.idle && (best == nil || c.idleSince.Before(best.idleSince)) {
			best = c
		}
	}
	if best == nil {
		return nil, 0
	}
	if wait := best.idleSince.Add(l.Grace).Sub(now); wait > 0 {
		return nil, wait
	}
	return best, 0
}

func (l *ConnLimit) wake() {
	l.mu.Lock()
	l.changed.Broadcast()
	l.mu.Unlock()
}

// ConnState tracks which connections have a request in progress.
func (l *ConnLimit) ConnState(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, open := l.open[lc]; !open {
		return
	}
	switch st {
	case http.StateIdle:
		lc.idle, lc.idleSince = true, time.Now()
		l.changed.Broadcast()
	case http.StateActive, http.StateHijacked:
		lc.idle = false
	}
}

// Stats reports the open connections and how many idle ones were closed to make room.
func (l *ConnLimit) Stats() (open, evicted int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open), l.evicted
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.open, c)
		c.l.changed.Broadcast()
		c.l.mu.Unlock()
	})
	return err
}
