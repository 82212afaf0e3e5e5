package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// testJPEG encodes a small image whose first pixel's red level is v, so frames can be
// told apart after decoding.
func testJPEG(tb testing.TB, v uint8) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for i := range img.Pix {
		img.Pix[i] = v
	}
	img.Set(0, 0, color.RGBA{v, v, v, 255})
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func writeImages(tb testing.TB, dir string, n int) []string {
	tb.Helper()
	var names []string
	for i := range n {
		name := fmt.Sprintf("f%02d.jpg", i)
		if err := os.WriteFile(filepath.Join(dir, name), testJPEG(tb, uint8(40*i)), 0o644); err != nil {
			tb.Fatal(err)
		}
		names = append(names, name)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an image"), 0o644)
	return names
}

func nextNames(tb testing.TB, s Source, n int) []string {
	tb.Helper()
	var got []string
	for range n {
		c, err := s.Next(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		got = append(got, c.Name)
	}
	return got
}

func TestDirSourceLoops(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, dir, 3)
	s, err := OpenSource(context.Background(), dir, SourceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := strings.Join(nextNames(t, s, 7), ",")
	if want := "f00.jpg,f01.jpg,f02.jpg,f00.jpg,f01.jpg,f02.jpg,f00.jpg"; got != want {
		t.Errorf("order %s, want %s", got, want)
	}
	if s.Live() {
		t.Error("a directory is not live")
	}
}

func TestGlobAndSingleImageAndNoLoop(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, dir, 3)
	noLoop := false
	s, err := OpenSource(context.Background(), filepath.Join(dir, "f0[12].jpg"), SourceConfig{Loop: &noLoop})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(nextNames(t, s, 2), ","); got != "f01.jpg,f02.jpg" {
		t.Errorf("glob gave %s", got)
	}
	if _, err := s.Next(context.Background()); !errors.Is(err, io.EOF) {
		t.Errorf("after the last file without loop: %v, want io.EOF", err)
	}
	one, err := OpenSource(context.Background(), filepath.Join(dir, "f01.jpg"), SourceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(nextNames(t, one, 3), ","); got != "f01.jpg,f01.jpg,f01.jpg" {
		t.Errorf("single image gave %s", got)
	}
	for _, bad := range []string{filepath.Join(dir, "none*.jpg"), filepath.Join(dir, "missing.jpg"), t.TempDir(), ""} {
		if _, err := OpenSource(context.Background(), bad, SourceConfig{}); err == nil {
			t.Errorf("%q opened", bad)
		}
	}
}

// mjpegServer serves frames as multipart/x-mixed-replace, the way mjpg-streamer does;
// declared is the boundary in the header, written the one in the body.
func mjpegServer(tb testing.TB, frames [][]byte, declared, written string, repeat bool) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary="+declared)
		fl := w.(http.Flusher)
		for i := 0; ; i++ {
			if i == len(frames) {
				if !repeat {
					return
				}
				i = 0
			}
			f := frames[i]
			_, err := fmt.Fprintf(w, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", written, len(f))
			if err != nil {
				return
			}
			w.Write(f)
			io.WriteString(w, "\r\n")
			fl.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Millisecond):
			}
		}
	}))
	tb.Cleanup(srv.Close)
	return srv
}

func firstLevel(tb testing.TB, data []byte) float32 {
	tb.Helper()
	img, err := imageio.Decode(bytes.NewReader(data))
	if err != nil {
		tb.Fatal(err)
	}
	return img.Data[0] * 255
}

func TestMJPEGSource(t *testing.T) {
	frames := [][]byte{testJPEG(t, 10), testJPEG(t, 200)}
	for _, tc := range []struct{ declared, written string }{
		{"boundarydonotcross", "boundarydonotcross"},
		{"--myboundary", "myboundary"},   // cameras that write the declared "--" once
		{"--myboundary", "--myboundary"}, // and ones that follow RFC 2046
	} {
		srv := mjpegServer(t, frames, tc.declared, tc.written, true)
		s, err := OpenSource(context.Background(), srv.URL+"/stream", SourceConfig{})
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		for i := range 5 {
			c, err := s.Next(context.Background())
			if err != nil {
				t.Fatalf("%+v frame %d: %v", tc, i, err)
			}
			want := []float32{10, 200}[i%2]
			if got := firstLevel(t, c.Data); got < want-3 || got > want+3 {
				t.Errorf("%+v frame %d level %v, want about %v", tc, i, got, want)
			}
		}
		if !s.Live() {
			t.Error("mjpeg is live")
		}
		s.Close()
	}
}

func TestMJPEGSourceErrors(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/404" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html>")
	}))
	defer plain.Close()
	for _, u := range []string{plain.URL + "/404", plain.URL + "/page"} {
		if _, err := OpenSource(context.Background(), u, SourceConfig{}); err == nil {
			t.Errorf("%s opened", u)
		} else {
			t.Log(err)
		}
	}
	// A stream that ends is an error (a live camera does not end): the pipeline retries.
	srv := mjpegServer(t, [][]byte{testJPEG(t, 1)}, "b", "b", false)
	s, err := OpenSource(context.Background(), srv.URL, SourceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(context.Background()); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("end of stream: %v, want an error that is not io.EOF", err)
	}
}

// TestMJPEGSourceCancel: cancelling the context unblocks a Next waiting for a frame.
func TestMJPEGSourceCancel(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=b")
		fmt.Fprintf(w, "--b\r\nContent-Type: image/jpeg\r\n\r\n")
		w.Write(bytes.Repeat([]byte{0}, 5000))
		w.(http.Flusher).Flush()
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	s, err := OpenSource(context.Background(), srv.URL, SourceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the context's error", err)
	}
}

func FuzzMJPEGStream(f *testing.F) {
	var good bytes.Buffer
	for _, v := range []uint8{1, 2} {
		fr := testJPEG(f, v)
		fmt.Fprintf(&good, "--b\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(fr))
		good.Write(fr)
		good.WriteString("\r\n")
	}
	f.Add("multipart/x-mixed-replace; boundary=b", good.Bytes())
	f.Add("multipart/x-mixed-replace; boundary=--b", good.Bytes())
	f.Add("multipart/x-mixed-replace; boundary=b", []byte("--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n"))
	f.Add("multipart/x-mixed-replace", []byte("--b\r\n"))
	f.Add("image/jpeg", []byte{0xff, 0xd8})
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		_, cancel := context.WithCancel(context.Background())
		s, err := newMJPEGSource("fuzz", ct, io.NopCloser(bytes.NewReader(body)), cancel)
		if err != nil {
			return
		}
		for range 8 {
			c, err := s.Next(context.Background())
			if err != nil {
				return
			}
			if len(c.Data) == 0 || len(c.Data) > maxFrameBytes {
				t.Fatalf("frame of %d bytes", len(c.Data))
			}
		}
	})
}

// TestPipelineReconnectsMJPEG: a camera that drops the stream after a few frames is
// reopened; frames keep coming and the failures show in the status counters.
func TestPipelineReconnectsMJPEG(t *testing.T) {
	var conns atomic.Int64
	frame := testJPEG(t, 99)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conns.Add(1)
		w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=f")
		for range 3 {
			fmt.Fprintf(w, "--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(frame))
			w.Write(frame)
			io.WriteString(w, "\r\n")
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	user := strings.Replace(srv.URL, "http://", "http://admin:hunter2@", 1)
	cfg := SourceConfig{Retry: Duration{time.Millisecond}, RetryMax: Duration{2 * time.Millisecond}, StallTimeout: Duration{5 * time.Second}}
	open := func(ctx context.Context) (Source, error) { return OpenSource(ctx, user, cfg) }
	var logs syncBuffer
	p := NewPipeline(&fakeModel{}, PipelineOptions{Thresh: 0.5, Source: cfg, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	pub := newCollector()
	runPipeline(t, p, open, pub)
	waitFor(t, "frames over reconnects", func() bool { return conns.Load() >= 3 && pub.count() >= 4 })
	if sn := p.Stats(); sn.SourceErrors < 2 {
		t.Errorf("source errors %d after %d connections", sn.SourceErrors, conns.Load())
	}
	if strings.Contains(logs.String(), "hunter2") || strings.Contains(p.Stats().SourceError, "hunter2") {
		t.Errorf("the camera password leaked into logs or status: %s", logs.String())
	}
	if got := RedactURL(user); !strings.Contains(got, "admin:xxxxx@") {
		t.Errorf("redacted %s", got)
	}
}

// TestSnapshotSource polls a still-image URL.
func TestSnapshotSource(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(testJPEG(t, uint8(50*n)))
	}))
	defer srv.Close()
	s, err := OpenSource(context.Background(), srv.URL+"/snapshot.jpg", SourceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		c, err := s.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := firstLevel(t, c.Data), float32(50*(i+1)); got < want-3 || got > want+3 {
			t.Errorf("snapshot %d level %v, want about %v", i, got, want)
		}
	}
	if hits.Load() != 3 || !s.Live() {
		t.Errorf("%d requests for 3 snapshots", hits.Load())
	}
}
