package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fpgadetector/pynq-agent/web/jpegenc"
)

// HubOptions tune the hub. Zero values pick the defaults named on each field.
type HubOptions struct {
	Quality          int      // JPEG quality of the frames the feed encodes (not of a source's own JPEGs), 1..100; default 75
	ViewerQueue      int      // frames waiting per viewer before the oldest is dropped; default 2
	InputQueue       int      // published frames waiting for the encoder; default 2
	RecentDetections int      // size of the recent-detections ring; default 64
	ThumbClasses     []string // classes that get a thumbnail; nil = ["chair"], "*" = all
	ThumbSize        int      // longest side of a thumbnail in pixels; default 96
	ThumbsPerFrame   int      // at most this many thumbnails per frame; default 4
	Logger           *slog.Logger
}

func (o *HubOptions) defaults() {
	if o.Quality <= 0 || o.Quality > 100 {
		o.Quality = 75
	}
	if o.ViewerQueue <= 0 {
		o.ViewerQueue = 2
	}
	if o.InputQueue <= 0 {
		o.InputQueue = 2
	}
	if o.RecentDetections <= 0 {
		o.RecentDetections = 64
	}
	if o.ThumbClasses == nil {
		o.ThumbClasses = []string{"chair"}
	}
	if o.ThumbSize <= 0 {
		o.ThumbSize = 96
	}
	if o.ThumbsPerFrame <= 0 {
		o.ThumbsPerFrame = 4
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// HubStats are the hub's counters since it started.
type HubStats struct {
	Viewers       int
	Published     uint64 // frames given to Publish
	Skipped       uint64 // frames the encoder never saw because it was behind (input queue full)
	Encoded       uint64 // frames encoded for the feed (at most one encode per frame)
	EncodeSeconds float64
	BytesSent     uint64 // feed bytes written to all viewers (payloads)
	ViewerDrops   uint64 // frames dropped for slow viewers, summed over all viewers ever
	ViewersTotal  uint64 // viewers that ever connected
}

// Hub fans processed frames out to feed viewers. Publish hands the frame to the hub's own
// goroutine, which encodes it once (JPEG plus the JSON metadata) when anyone watches and
// queues the same bytes to every viewer; a full viewer queue drops that viewer's oldest
// frame. Nothing the viewers do can block Publish. Close stops the hub and disconnects
// every viewer.
type Hub struct {
	opt    HubOptions
	thumbs map[string]bool // classes that get thumbnails; nil map with allThumbs
	all    bool

	in     chan *Frame
	joined chan *viewer // new viewers, sent the latest frame at once (the feed may be slow or paused)
	done   chan struct{}
	closed sync.Once
	wg     sync.WaitGroup

	latest  atomic.Pointer[Frame]
	encoded atomic.Pointer[feedMessage] // the last frame encoded for the feed, reused by snapshots

	mu      sync.Mutex
	viewers atomic.Pointer[[]*viewer] // copy-on-write under mu
	nextID  uint64

	ring *detectionRing

	published, skipped, encodes, encodeNanos, bytesSent, drops, viewersTotal atomic.Uint64
}

// feedMessage is one frame encoded for the feed: the JSON metadata and the JPEG, each framed
// for WebSocket once and written to every viewer as is.
type feedMessage struct {
	id        uint64
	jpeg      []byte
	meta      *websocket.PreparedMessage
	image     *websocket.PreparedMessage
	size      uint64 // payload bytes of both messages
	published time.Time
}

// viewer is one connected feed client as the hub sees it.
type viewer struct {
	id      uint64
	queue   chan *feedMessage
	replies chan []byte // text messages for this viewer alone (control replies)
	dropped atomic.Uint64
	sent    atomic.Uint64
}

// errHubClosed is returned to viewers that connect after Close.
var errHubClosed = errors.New("hub closed")

// NewHub starts a hub; call Close when done with it.
func NewHub(opt HubOptions) *Hub {
	opt.defaults()
	h := &Hub{
		opt:    opt,
		in:     make(chan *Frame, opt.InputQueue),
		joined: make(chan *viewer, 16),
		done:   make(chan struct{}),
		ring:   newDetectionRing(opt.RecentDetections),
	}
	h.thumbs = map[string]bool{}
	for _, c := range opt.ThumbClasses {
		if c == "*" {
			h.all = true
		}
		h.thumbs[c] = true
	}
	empty := []*viewer{}
	h.viewers.Store(&empty)
	h.wg.Add(1)
	go h.run()
	return h
}

// Publish hands a processed frame to the hub and returns at once. It stamps f.Published
// when zero. The frame and its image must not be changed afterwards: viewers, snapshots and
// thumbnails read them. When the encoder is behind, the oldest waiting frame is skipped.
func (h *Hub) Publish(f *Frame) {
	if f == nil || h.isClosed() {
		return
	}
	if f.Published.IsZero() {
		f.Published = time.Now()
	}
	h.published.Add(1)
	h.latest.Store(f)
	for {
		select {
		case h.in <- f:
			return
		default:
		}
		select { // full: make room by skipping the oldest waiting frame
		case <-h.in:
			h.skipped.Add(1)
		default:
		}
	}
}

// Latest returns the most recently published frame, or nil before the first.
func (h *Hub) Latest() *Frame { return h.latest.Load() }

// Viewers returns the number of connected feed viewers.
func (h *Hub) Viewers() int { return len(*h.viewers.Load()) }

// Recent returns up to limit recent detections, newest first, optionally of one class
// (empty = all). limit <= 0 means the whole ring.
func (h *Hub) Recent(class string, limit int) []Detection { return h.ring.list(class, limit, false) }

// Stats returns the hub's counters.
func (h *Hub) Stats() HubStats {
	return HubStats{
		Viewers:       h.Viewers(),
		Published:     h.published.Load(),
		Skipped:       h.skipped.Load(),
		Encoded:       h.encodes.Load(),
		EncodeSeconds: float64(h.encodeNanos.Load()) / 1e9,
		BytesSent:     h.bytesSent.Load(),
		ViewerDrops:   h.drops.Load(),
		ViewersTotal:  h.viewersTotal.Load(),
	}
}

// Close stops the encoder and tells every viewer connection to close. Publish after Close
// does nothing. Close is idempotent.
func (h *Hub) Close() {
	h.closed.Do(func() { close(h.done) })
	h.wg.Wait()
}

func (h *Hub) isClosed() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// run is the hub's goroutine: it records detections and encodes frames for the viewers.
func (h *Hub) run() {
	defer h.wg.Done()
	for {
		select {
		case f := <-h.in:
			h.ring.add(f, h.wantThumb, h.opt.ThumbSize, h.opt.ThumbsPerFrame)
			if h.Viewers() == 0 {
				continue // nobody watches: no encode
			}
			if m := h.encodeOnce(f); m != nil {
				h.fanout(m)
			}
		case v := <-h.joined:
			if f := h.latest.Load(); f != nil {
				if m := h.encodeOnce(f); m != nil {
					h.offer(v, m)
				}
			}
		case <-h.done:
			return
		}
	}
}

func (h *Hub) wantThumb(class string) bool { return h.all || h.thumbs[class] }

// encodeOnce returns the feed message of f, encoding it unless it is the last one encoded
// (a frame sent to a new viewer before the hub got to it in its queue).
func (h *Hub) encodeOnce(f *Frame) *feedMessage {
	if m := h.encoded.Load(); m != nil && m.id == f.ID && m.published.Equal(f.Published) {
		return m
	}
	m, err := h.encode(f)
	if err != nil {
		h.opt.Logger.Warn("feed: encode frame", "id", f.ID, "err", err)
		return nil
	}
	return m
}

// frameMeta is the JSON text message that accompanies each frame's JPEG on the feed.
type frameMeta struct {
	Type       string     `json:"type"` // "frame"
	ID         uint64     `json:"id"`
	Time       time.Time  `json:"time"`      // captured
	Published  time.Time  `json:"published"` // handed to the hub
	Width      int        `json:"width"`
	Height     int        `json:"height"`
	Detections []Box      `json:"detections"`
	Stats      FrameStats `json:"stats"`
	Viewers    int        `json:"viewers"`
	Bytes      int        `json:"bytes"` // size of the binary JPEG message that follows
}

// encode turns a frame into the feed's two messages, once for all viewers.
func (h *Hub) encode(f *Frame) (*feedMessage, error) {
	start := time.Now()
	jpg := f.JPEG
	if jpg == nil {
		var err error
		if jpg, err = encodeJPEG(f.Image, h.opt.Quality); err != nil {
			return nil, err
		}
	}
	b := f.Image.Bounds()
	dets := f.Detections
	if dets == nil {
		dets = []Box{}
	}
	meta, err := json.Marshal(frameMeta{Type: "frame", ID: f.ID, Time: f.Captured, Published: f.Published,
		Width: b.Dx(), Height: b.Dy(), Detections: dets, Stats: f.Stats, Viewers: h.Viewers(), Bytes: len(jpg)})
	if err != nil {
		return nil, err
	}
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, meta)
	if err != nil {
		return nil, err
	}
	pi, err := websocket.NewPreparedMessage(websocket.BinaryMessage, jpg)
	if err != nil {
		return nil, err
	}
	h.encodes.Add(1)
	h.encodeNanos.Add(uint64(time.Since(start)))
	m := &feedMessage{id: f.ID, jpeg: jpg, meta: pm, image: pi, size: uint64(len(meta) + len(jpg)), published: f.Published}
	h.encoded.Store(m)
	return m, nil
}

// encodeJPEG encodes an image; a nil or empty image is an error.
func encodeJPEG(img image.Image, quality int) ([]byte, error) {
	if img == nil || img.Bounds().Empty() {
		return nil, errors.New("empty image")
	}
	var buf bytes.Buffer
	buf.Grow(img.Bounds().Dx() * img.Bounds().Dy() / 4)
	if err := jpegenc.Encode(&buf, img, quality); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// fanout queues a message to every viewer without blocking: a full queue loses its oldest
// message, which is counted as that viewer's drop.
func (h *Hub) fanout(m *feedMessage) {
	for _, v := range *h.viewers.Load() {
		h.offer(v, m)
	}
}

// offer queues m to one viewer, dropping the viewer's oldest queued message when full.
func (h *Hub) offer(v *viewer, m *feedMessage) {
	for {
		select {
		case v.queue <- m:
			return
		default:
		}
		select {
		case <-v.queue:
			v.dropped.Add(1)
			h.drops.Add(1)
		default:
		}
	}
}

// addViewer registers a new viewer; it fails after Close.
func (h *Hub) addViewer() (*viewer, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.isClosed() {
		return nil, errHubClosed
	}
	h.nextID++
	v := &viewer{id: h.nextID, queue: make(chan *feedMessage, h.opt.ViewerQueue), replies: make(chan []byte, 4)}
	old := *h.viewers.Load()
	list := make([]*viewer, 0, len(old)+1)
	list = append(append(list, old...), v)
	h.viewers.Store(&list)
	h.viewersTotal.Add(1)
	select { // the hub sends it the latest frame; when 16 join at once, the rest wait for the next
	case h.joined <- v:
	default:
	}
	return v, nil
}

// removeViewer forgets a viewer; its queued messages are garbage.
func (h *Hub) removeViewer(v *viewer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := *h.viewers.Load()
	list := make([]*viewer, 0, len(old))
	for _, o := range old {
		if o != v {
			list = append(list, o)
		}
	}
	h.viewers.Store(&list)
}

// reply queues a text message for one viewer; it is dropped when the viewer's reply
// queue is full (a client flooding control messages gets fewer answers, nothing blocks).
func (v *viewer) reply(msg []byte) bool {
	select {
	case v.replies <- msg:
		return true
	default:
		return false
	}
}

// Encode encodes f for the viewers as Publish does, without sending it (benchmarks of
// the feed's cost per frame).
func (h *Hub) Encode(f *Frame) error {
	_, err := h.encode(f)
	return err
}
