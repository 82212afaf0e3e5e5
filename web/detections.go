package web

import (
	"encoding/base64"
	"image"
	"image/color"
	"sync"
	"time"
)

// Detection is one entry of the recent-detections list (/api/detections).
type Detection struct {
	FrameID uint64    `json:"frame_id"`
	Time    time.Time `json:"time"` // when the frame was captured
	Box
	Thumb string `json:"thumb,omitempty"` // data:image/jpeg;base64 crop of the box, for thumbnail classes
}

// detectionRing keeps the newest detections in a fixed-size ring.
type detectionRing struct {
	mu    sync.Mutex
	items []Detection
	next  int
	full  bool
	added uint64 // detections ever added: the version of the list, for ETags
}

func newDetectionRing(n int) *detectionRing { return &detectionRing{items: make([]Detection, n)} }

// add records a frame's detections; boxes of classes wantThumb accepts get a small JPEG
// crop (at most perFrame of them, so a crowded frame cannot stall the hub).
func (r *detectionRing) add(f *Frame, wantThumb func(string) bool, size, perFrame int) {
	if len(f.Detections) == 0 {
		return
	}
	recs := make([]Detection, 0, len(f.Detections))
	thumbs := 0
	for _, d := range f.Detections {
		rec := Detection{FrameID: f.ID, Time: f.Captured, Box: d}
		if thumbs < perFrame && wantThumb(d.Class) && f.Image != nil {
			if jpg, err := encodeJPEG(thumbnail(f.Image, d.Box, size), 70); err == nil {
				rec.Thumb = "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(jpg)
				thumbs++
			}
		}
		recs = append(recs, rec)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.added += uint64(len(recs))
	for _, rec := range recs {
		r.items[r.next] = rec
		r.next = (r.next + 1) % len(r.items)
		if r.next == 0 {
			r.full = true
		}
	}
}

// version changes whenever detections are added.
func (r *detectionRing) version() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.added
}

// list returns up to limit detections, newest first, of one class or all ("");
// thumbsOnly keeps those with a thumbnail.
func (r *detectionRing) list(class string, limit int, thumbsOnly bool) []Detection {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.items)
	}
	if limit <= 0 || limit > n {
		limit = n
	}
	out := make([]Detection, 0, limit)
	for i := 1; i <= n && len(out) < limit; i++ {
		d := r.items[(r.next-i+len(r.items))%len(r.items)]
		if (class == "" || d.Class == class) && (!thumbsOnly || d.Thumb != "") {
			out = append(out, d)
		}
	}
	return out
}

// thumbnail crops box (pixels, clamped to the image) and scales it so its longest side
// is at most size, by nearest neighbour: cheap, and good enough for a list entry.
func thumbnail(img image.Image, box [4]float32, size int) image.Image {
	b := img.Bounds()
	r := image.Rect(int(box[0]), int(box[1]), int(box[2]+0.5), int(box[3]+0.5)).Add(b.Min).Intersect(b)
	if r.Empty() {
		r = b
	}
	w, h := r.Dx(), r.Dy()
	scale := 1.0
	if m := max(w, h); m > size {
		scale = float64(size) / float64(m)
	}
	tw, th := max(1, int(float64(w)*scale)), max(1, int(float64(h)*scale))
	out := image.NewRGBA(image.Rect(0, 0, tw, th))
	for y := range th {
		sy := r.Min.Y + y*h/th
		for x := range tw {
			sx := r.Min.X + x*w/tw
			out.Set(x, y, color.RGBAModel.Convert(img.At(sx, sy)))
		}
	}
	return out
}
