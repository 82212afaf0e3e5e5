package web

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/draw"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/gorilla/websocket"
)

// ServerOptions configure the HTTP API and the feed. Zero values pick the defaults named.
type ServerOptions struct {
	Token          string   // bearer token for control; empty disables control (403)
	AllowedOrigins []string // extra browser origins allowed on /ws ("https://host:port", or "*"); same origin is always allowed
	ReadLimit      int64    // largest message a feed client may send, bytes; default 4096
	PingInterval   time.Duration
	// WriteDeadline bounds each write to a viewer; a viewer that cannot take a frame in
	// time is disconnected. Default 10s.
	WriteDeadline time.Duration
	// MaxViewers caps the feed's viewers; one more is refused with 503 before the
	// upgrade. Default 32: each costs a JPEG send per frame on the board's CPU.
	MaxViewers int
	Version    string
	Logger     *slog.Logger
}

const (
	defaultReadLimit     = 4096
	defaultPingInterval  = 20 * time.Second
	defaultWriteDeadline = 10 * time.Second
	defaultMaxViewers    = 32
	// requestWriteLimit bounds writing one API answer: a client that does not read
	// cannot hold a connection and its buffers (the feed sets its own deadlines).
	requestWriteLimit = 30 * time.Second
)

func (o *ServerOptions) defaults() {
	if o.ReadLimit <= 0 {
		o.ReadLimit = defaultReadLimit
	}
	if o.PingInterval <= 0 {
		o.PingInterval = defaultPingInterval
	}
	if o.WriteDeadline <= 0 {
		o.WriteDeadline = defaultWriteDeadline
	}
	if o.MaxViewers <= 0 {
		o.MaxViewers = defaultMaxViewers
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// server answers the API and the feed from a Backend and a Hub.
type server struct {
	b        Backend
	hub      *Hub
	opt      ServerOptions
	origins  map[string]bool
	anyOrig  bool
	upgrader websocket.Upgrader
	guard    *authGuard

	badOrigin, controlOK, controlDenied, controlBad, snapshots, viewersRefused atomic.Uint64
	feedSlots                                                                  atomic.Int64 // feed connections admitted, for MaxViewers
	snaps                                                                      snapshotCache
}

// NewServer returns the handler for the API, the feed (/ws) and the page (/).
func NewServer(b Backend, h *Hub, opt ServerOptions) http.Handler {
	opt.defaults()
	s := &server{b: b, hub: h, opt: opt, origins: map[string]bool{}, guard: newAuthGuard()}
	for _, o := range opt.AllowedOrigins {
		if o == "*" {
			s.anyOrig = true
		}
		s.origins[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  16 << 10,
		CheckOrigin:      s.checkOrigin,
		Error:            s.upgradeError,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /api/status", s.status)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /api/snapshot.jpg", s.snapshot)
	mux.HandleFunc("GET /api/detections", s.detections)
	mux.HandleFunc("/api/control", s.control)
	mux.HandleFunc("/api/verify", s.verify)
	mux.HandleFunc("GET /ws", s.feed)
	mux.Handle("/", pageHandler()) // GET/HEAD only: the file server refuses others
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(requestWriteLimit))
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.b.Health(); err != nil {
		http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, "ok %s\n", s.opt.Version)
}

// readyz is ready only while healthy too: a load balancer or deploy check must not
// send viewers to a daemon whose engine wedged.
func (s *server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !s.b.Ready() {
		msg := "not ready"
		if e := s.b.Status().SourceError; e != "" {
			msg += ": frame source failing (retrying): " + e
		}
		http.Error(w, msg, http.StatusServiceUnavailable)
		return
	}
	if err := s.b.Health(); err != nil {
		http.Error(w, "not ready: unhealthy: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ready\n")
}

func (s *server) status(w http.ResponseWriter, _ *http.Request) {
	st := s.b.Status()
	st.Viewers = s.hub.Viewers()
	if st.Version == "" {
		st.Version = s.opt.Version
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *server) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if err := s.b.WriteMetrics(w); err != nil {
		s.opt.Logger.Warn("metrics: backend", "err", err)
	}
	s.hub.WriteMetrics(w)
	s.writeMetrics(w)
}

func (s *server) detections(w http.ResponseWriter, r *http.Request) {
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			http.Error(w, "limit: want a non-negative integer", http.StatusBadRequest)
			return
		}
		limit = n
	}
	// Pages poll this: answer 304 while nothing was added (the thumbnails make it heavy).
	etag := fmt.Sprintf(`"%d-%x"`, s.hub.ring.version(), crc32.ChecksumIEEE([]byte(r.URL.RawQuery)))
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache") // keep it, but revalidate every time
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	q := r.URL.Query()
	writeJSON(w, http.StatusOK, s.hub.ring.list(q.Get("class"), limit, q.Get("thumbs") == "1"))
}

// snapshot serves the latest frame as JPEG; ?boxes=1 draws the detections on a copy.
func (s *server) snapshot(w http.ResponseWriter, r *http.Request) {
	f := s.hub.Latest()
	if f == nil || f.Image == nil {
		http.Error(w, "no frame yet: the pipeline has not published one", http.StatusServiceUnavailable)
		return
	}
	var withBoxes bool
	switch r.URL.Query().Get("boxes") {
	case "1", "true":
		withBoxes = true
	case "", "0", "false":
	default:
		http.Error(w, "boxes: want 0 or 1", http.StatusBadRequest)
		return
	}
	jpg, err := s.snaps.get(f, withBoxes, func() ([]byte, error) {
		if withBoxes {
			return encodeJPEG(drawBoxes(f), s.hub.opt.Quality)
		}
		if m := s.hub.encoded.Load(); m != nil && m.id == f.ID && m.published.Equal(f.Published) {
			return m.jpeg, nil // the feed already encoded this frame
		}
		return encodeJPEG(f.Image, s.hub.opt.Quality)
	})
	if err != nil {
		http.Error(w, "encode snapshot: "+err.Error(), http.StatusInternalServerError)
		return
	}
	s.snapshots.Add(1)
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(jpg)))
	w.Write(jpg)
}

// drawBoxes copies the frame and draws its detections with their labels.
func drawBoxes(f *Frame) image.Image {
	b := f.Image.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(dst, dst.Bounds(), f.Image, b.Min, draw.Src)
	labels := make([]imageio.Label, 0, len(f.Detections))
	for _, d := range f.Detections {
		labels = append(labels, imageio.Label{Box: d.Box, Class: d.ClassID,
			Text: fmt.Sprintf("%s %.0f%%", d.Class, d.Score*100)})
	}
	imageio.Draw(dst, labels)
	return dst
}

// control applies an authenticated Control sent as JSON by POST.
func (s *server) control(w http.ResponseWriter, r *http.Request) {
	if !s.authorizedPost(w, r, "use POST with a JSON body") {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opt.ReadLimit))
	if err != nil {
		s.controlBad.Add(1)
		http.Error(w, fmt.Sprintf("read body: %v (limit %d bytes)", err, s.opt.ReadLimit), http.StatusRequestEntityTooLarge)
		return
	}
	c, err := parseControl(body)
	if err != nil {
		s.controlBad.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.b.Control(c); err != nil {
		s.controlBad.Add(1)
		http.Error(w, "control rejected: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.controlOK.Add(1)
	st := s.b.Status()
	st.Viewers = s.hub.Viewers()
	writeJSON(w, http.StatusOK, st)
}

// authorize checks a presented token: 0 when good, else the HTTP status and a message.
func (s *server) authorize(token string) (int, string) {
	switch {
	case s.opt.Token == "":
		s.controlDenied.Add(1)
		return http.StatusForbidden, "control disabled: the agent has no auth token configured"
	case token == "":
		s.controlDenied.Add(1)
		return http.StatusUnauthorized, "missing token: send Authorization: Bearer <token>"
	case subtle.ConstantTimeCompare([]byte(token), []byte(s.opt.Token)) != 1:
		s.controlDenied.Add(1)
		s.guard.refused(s.opt.Logger, "bad token")
		return http.StatusForbidden, "bad token"
	}
	s.guard.accepted()
	return 0, ""
}

// authorizedPost answers a request that is not a POST (405, with usage as the hint) or
// lacks the Bearer token (401/403, see authorize) and reports whether the handler may
// go on.
func (s *server) authorizedPost(w http.ResponseWriter, r *http.Request, usage string) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, usage, http.StatusMethodNotAllowed)
		return false
	}
	if code, msg := s.authorize(bearer(r)); code != 0 {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pynq-agent"`)
		}
		http.Error(w, msg, code)
		return false
	}
	return true
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// controlFields is the JSON a control carries, over HTTP or on the socket (which adds
// type and token).
type controlFields struct {
	Type    string    `json:"type,omitempty"`
	Token   string    `json:"token,omitempty"`
	Thresh  *float32  `json:"thresh,omitempty"`
	Classes *[]string `json:"classes,omitempty"`
	Paused  *bool     `json:"paused,omitempty"`
}

// maxClasses bounds a class filter; a model with more classes than this is unlikely.
const maxClasses = 1000

// parseControl decodes and checks a control body; errors say what is wrong.
func parseControl(body []byte) (Control, error) {
	var f controlFields
	if err := decodeStrict(body, &f); err != nil {
		return Control{}, err
	}
	return f.control()
}

func (f controlFields) control() (Control, error) {
	if f.Thresh == nil && f.Classes == nil && f.Paused == nil {
		return Control{}, errors.New("empty control: set thresh, classes or paused")
	}
	if f.Thresh != nil {
		t := float64(*f.Thresh)
		if math.IsNaN(t) || t < 0 || t > 1 {
			return Control{}, fmt.Errorf("thresh %v out of range: want 0..1", *f.Thresh)
		}
	}
	if f.Classes != nil {
		if len(*f.Classes) > maxClasses {
			return Control{}, fmt.Errorf("classes: %d names, at most %d", len(*f.Classes), maxClasses)
		}
		for i, c := range *f.Classes {
			if strings.TrimSpace(c) == "" {
				return Control{}, fmt.Errorf("classes[%d]: empty name", i)
			}
		}
	}
	return Control{Thresh: f.Thresh, Classes: f.Classes, Paused: f.Paused}, nil
}

// decodeStrict decodes one JSON object, refusing unknown fields and trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed control JSON: %w", err)
	}
	if dec.More() {
		return errors.New("malformed control JSON: trailing data after the object")
	}
	return nil
}

// checkOrigin allows requests without Origin (non-browser clients), same-origin
// requests, and the configured allow-list.
func (s *server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		s.badOrigin.Add(1)
		return false
	}
	if strings.EqualFold(u.Host, r.Host) || s.anyOrig || s.origins[strings.ToLower(strings.TrimRight(origin, "/"))] {
		return true
	}
	s.badOrigin.Add(1)
	s.opt.Logger.Warn("feed: origin refused", "origin", origin, "host", r.Host, "remote", r.RemoteAddr)
	return false
}

func (s *server) upgradeError(w http.ResponseWriter, _ *http.Request, status int, reason error) {
	http.Error(w, reason.Error(), status)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}
