package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"net/http"

	"github.com/gorilla/websocket"
)

// The feed protocol on /ws. Server to client: a {"type":"hello"} text message on connect,
// then per frame a {"type":"frame",...} text message (frameMeta) followed by one binary
// message with the frame's JPEG; answers to control messages are {"type":"control_ok"}
// or {"type":"error","error":"..."}. Client to server: only text control messages
// {"type":"control","token":"..","thresh":..,"classes":[..],"paused":..}. Binary
// messages close the connection (1003), messages over the read limit close it (1009).

// hello is the first message on the feed.
type hello struct {
	Type    string `json:"type"` // "hello"
	Version string `json:"version"`
	Control bool   `json:"control"` // whether the server accepts control messages at all
}

type feedReply struct {
	Type   string  `json:"type"` // "control_ok" | "error"
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
}

// feed upgrades to WebSocket and streams frames until the client or the hub goes away.
func (s *server) feed(w http.ResponseWriter, r *http.Request) {
	// A slot is taken before the upgrade, atomically, so that a burst of connections
	// cannot all pass the check before any of them is counted.
	if n := s.feedSlots.Add(1); n > int64(s.opt.MaxViewers) {
		s.feedSlots.Add(-1)
		s.viewersRefused.Add(1)
		http.Error(w, fmt.Sprintf("too many viewers: %d watch already (server.max_viewers %d); try again later", n-1, s.opt.MaxViewers), http.StatusServiceUnavailable)
		return
	}
	defer s.feedSlots.Add(-1)
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered the request
	}
	defer conn.Close()
	v, err := s.hub.addViewer()
	if err != nil {
		conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"),
			time.Now().Add(s.opt.WriteDeadline))
		return
	}
	defer s.hub.removeViewer(v)
	log := s.opt.Logger.With("viewer", v.id, "remote", r.RemoteAddr)
	log.Info("feed: viewer connected")
	conn.SetReadLimit(s.opt.ReadLimit)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		s.readLoop(conn, v)
	}()
	err = s.writeLoop(conn, v, readDone)
	conn.Close() // unblocks the reader
	<-readDone
	log.Info("feed: viewer gone", "sent", v.sent.Load(), "dropped", v.dropped.Load(), "err", err)
}

// pongWait is how long a viewer may stay silent (no pong, no message) before it is dropped.
func (s *server) pongWait() time.Duration { return 2*s.opt.PingInterval + s.opt.WriteDeadline }

// writeLoop is the only writer of a connection: frames, replies, pings.
func (s *server) writeLoop(conn *websocket.Conn, v *viewer, readDone <-chan struct{}) error {
	ping := time.NewTicker(s.opt.PingInterval)
	defer ping.Stop()
	hi, _ := json.Marshal(hello{Type: "hello", Version: s.opt.Version, Control: s.opt.Token != ""})
	if err := s.write(conn, websocket.TextMessage, hi); err != nil {
		return err
	}
	var last *feedMessage
	for {
		select {
		case m := <-v.queue:
			if m == last {
				continue // the latest frame sent on joining, then again by the fan-out
			}
			last = m
			if err := s.writePrepared(conn, m.meta); err != nil {
				return err
			}
			if err := s.writePrepared(conn, m.image); err != nil {
				return err
			}
			v.sent.Add(1)
			s.hub.bytesSent.Add(m.size)
		case msg := <-v.replies:
			if err := s.write(conn, websocket.TextMessage, msg); err != nil {
				return err
			}
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.opt.WriteDeadline)); err != nil {
				return err
			}
		case <-readDone:
			return errors.New("reader stopped")
		case <-s.hub.done:
			conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"),
				time.Now().Add(s.opt.WriteDeadline))
			return errHubClosed
		}
	}
}

func (s *server) write(conn *websocket.Conn, kind int, data []byte) error {
	conn.SetWriteDeadline(time.Now().Add(s.opt.WriteDeadline))
	return conn.WriteMessage(kind, data)
}

func (s *server) writePrepared(conn *websocket.Conn, m *websocket.PreparedMessage) error {
	conn.SetWriteDeadline(time.Now().Add(s.opt.WriteDeadline))
	return conn.WritePreparedMessage(m)
}

// readLoop reads control messages and keeps the read deadline alive on pongs. It returns
// on any read error; over-limit messages have already been answered with close 1009.
func (s *server) readLoop(conn *websocket.Conn, v *viewer) {
	wait := s.pongWait()
	conn.SetReadDeadline(time.Now().Add(wait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(wait)) })
	for {
		kind, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		conn.SetReadDeadline(time.Now().Add(wait))
		if kind != websocket.TextMessage {
			conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseUnsupportedData, "the feed accepts only text control messages"),
				time.Now().Add(s.opt.WriteDeadline))
			return
		}
		v.reply(s.socketControl(data))
	}
}

// socketControl applies one control message from the feed and returns the reply.
func (s *server) socketControl(data []byte) []byte {
	var f controlFields
	reply := func(r feedReply) []byte { b, _ := json.Marshal(r); return b }
	fail := func(msg string) []byte { return reply(feedReply{Type: "error", Error: msg}) }
	if err := decodeStrict(data, &f); err != nil {
		s.controlBad.Add(1)
		return fail(err.Error())
	}
	if f.Type != "control" {
		s.controlBad.Add(1)
		return fail(`unknown message type "` + f.Type + `": the feed is read-only except {"type":"control",...}`)
	}
	if code, msg := s.authorize(f.Token); code != 0 {
		return fail(msg)
	}
	c, err := f.control()
	if err != nil {
		s.controlBad.Add(1)
		return fail(err.Error())
	}
	if err := s.b.Control(c); err != nil {
		s.controlBad.Add(1)
		return fail("control rejected: " + err.Error())
	}
	s.controlOK.Add(1)
	st := s.b.Status()
	st.Viewers = s.hub.Viewers()
	return reply(feedReply{Type: "control_ok", Status: &st})
}
