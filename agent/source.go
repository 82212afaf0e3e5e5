package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Capture is one frame from a source: encoded bytes (JPEG or PNG) or, for raw camera
// formats, pixels already converted to RGBA.
type Capture struct {
	Data  []byte
	Image *image.RGBA
	YUYV  *YUYVFrame // a camera's raw frame (V4L2 YUYV)
	Time  time.Time  // when it was captured (read)
	Name  string     // file name for file sources, else ""

	pulled bool // read ahead at the pipeline's pace (files without a limit): restamped when taken
}

// Source produces frames. Next blocks until a frame is there; it returns io.EOF when a
// non-looping file source is done, and any other error when the source failed (the
// pipeline closes it and opens it again after a delay).
type Source interface {
	Next(ctx context.Context) (*Capture, error)
	// Live says frames arrive in real time (cameras, streams): the pipeline then skips
	// frames above the fps limit instead of waiting for them.
	Live() bool
	Close() error
	String() string
}

// maxFrameBytes bounds one encoded frame from a stream or file.
const maxFrameBytes = 32 << 20

// OpenSource opens the source input names: an http(s):// MJPEG stream, a V4L2 device
// (/dev/video*), synthetic scenes (synth:SEED, [OpenSynth]), a directory of images, a
// glob, or one image file.
func OpenSource(ctx context.Context, input string, cfg SourceConfig) (Source, error) {
	switch {
	case input == "":
		return nil, errors.New("no frame source (set source.input or -source)")
	case strings.HasPrefix(input, "http://") || strings.HasPrefix(input, "https://"):
		return OpenMJPEG(ctx, input, http.DefaultClient)
	case strings.HasPrefix(input, "/dev/video") || strings.HasPrefix(input, "v4l2:"):
		return OpenV4L2(strings.TrimPrefix(input, "v4l2:"), V4L2Options{Width: cfg.Width, Height: cfg.Height, Format: cfg.Format})
	case isSynthInput(input):
		return OpenSynth(input, cfg)
	}
	files, err := listImages(input)
	if err != nil {
		return nil, err
	}
	return &fileSource{spec: input, files: files, loop: cfg.Looping()}, nil
}

// RedactURL hides the password of a URL with user info ("http://admin:xxxxx@cam/");
// other inputs are returned as they are.
func RedactURL(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := neturl.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// imageExts are the file types file sources pick from directories.
var imageExts = []string{".jpg", ".jpeg", ".png"}

// listImages expands a directory (its images, sorted), a glob or a single file.
func listImages(input string) ([]string, error) {
	if strings.ContainsAny(input, "*?[") {
		m, err := filepath.Glob(input)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", input, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("source %s: no files match", input)
		}
		slices.Sort(m)
		return m, nil
	}
	fi, err := os.Stat(input)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if !fi.IsDir() {
		return []string{input}, nil
	}
	ents, err := os.ReadDir(input)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	var files []string
	for _, e := range ents {
		if !e.IsDir() && slices.Contains(imageExts, strings.ToLower(filepath.Ext(e.Name()))) {
			files = append(files, filepath.Join(input, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("source %s: no .jpg, .jpeg or .png files in the directory", input)
	}
	return files, nil
}

// fileSource plays image files in order, looping when asked.
type fileSource struct {
	spec  string
	files []string
	loop  bool
	next  int
}

func (f *fileSource) Next(ctx context.Context) (*Capture, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.next >= len(f.files) {
		if !f.loop {
			return nil, io.EOF
		}
		f.next = 0
	}
	path := f.files[f.next]
	f.next++
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	return &Capture{Data: data, Time: time.Now(), Name: filepath.Base(path)}, nil
}

func readLimited(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxFrameBytes+1))
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", path, err)
	}
	if len(data) > maxFrameBytes {
		return nil, fmt.Errorf("source %s: larger than %d MiB", path, maxFrameBytes>>20)
	}
	return data, nil
}

func (f *fileSource) Live() bool     { return false }
func (f *fileSource) Close() error   { return nil }
func (f *fileSource) String() string { return f.spec }

// mjpegSource reads a multipart/x-mixed-replace stream of JPEGs (IP cameras,
// mjpg-streamer, ffmpeg's mpjpeg muxer).
type mjpegSource struct {
	url    string
	body   io.ReadCloser
	parts  *multipart.Reader
	cancel context.CancelFunc
}

// OpenMJPEG connects to an MJPEG-over-HTTP URL.
func OpenMJPEG(ctx context.Context, rawURL string, client *http.Client) (Source, error) {
	url := RedactURL(rawURL) // for messages: camera URLs often carry a password
	// The stream outlives Open's caller context only through its own cancel, which
	// Close calls; the pipeline's context still ends it via Next.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, rawURL, nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mjpeg source: %w", err)
	}
	stop := context.AfterFunc(ctx, cancel) // until Open returns, the caller's ctx ends it
	defer stop()
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mjpeg source: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("mjpeg source %s: HTTP %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "image/") {
		// A still-image URL (a camera's snapshot.jpg): poll it.
		defer resp.Body.Close()
		defer cancel()
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxFrameBytes+1))
		if err != nil || len(data) > maxFrameBytes {
			return nil, fmt.Errorf("snapshot source %s: read: %v (or larger than %d MiB)", url, err, maxFrameBytes>>20)
		}
		return &snapshotSource{url: rawURL, shown: url, client: client, first: data}, nil
	}
	src, err := newMJPEGSource(url, resp.Header.Get("Content-Type"), resp.Body, cancel)
	if err != nil {
		resp.Body.Close()
		cancel()
		return nil, err
	}
	return src, nil
}

// newMJPEGSource reads a multipart stream from body, given its Content-Type.
func newMJPEGSource(url, contentType string, body io.ReadCloser, cancel context.CancelFunc) (*mjpegSource, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		return nil, fmt.Errorf("mjpeg source %s: Content-Type %q is not a multipart stream (want multipart/x-mixed-replace; boundary=...)", url, contentType)
	}
	boundary := params["boundary"]
	if boundary == "" {
		return nil, fmt.Errorf("mjpeg source %s: Content-Type has no boundary", url)
	}
	// Some cameras declare "boundary=--x" and then write "--x" lines instead of
	// "----x"; mime/multipart adds its own "--", so look at the stream to decide.
	br := bufio.NewReaderSize(body, 8<<10)
	head, _ := br.Peek(4 << 10)
	if strings.HasPrefix(boundary, "--") && !bytes.Contains(head, []byte("--"+boundary)) {
		boundary = boundary[2:]
	}
	return &mjpegSource{url: url, body: body, parts: multipart.NewReader(br, boundary), cancel: cancel}, nil
}

func (m *mjpegSource) Next(ctx context.Context) (*Capture, error) {
	stop := context.AfterFunc(ctx, m.cancel) // unblock a read when the pipeline stops
	defer stop()
	for {
		p, err := m.parts.NextPart()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, io.EOF) { // a live stream does not end: retry, not "ended"
				return nil, fmt.Errorf("mjpeg source %s: stream ended (%v): %w", m.url, err, io.ErrUnexpectedEOF)
			}
			return nil, fmt.Errorf("mjpeg source %s: %w", m.url, err)
		}
		ct := p.Header.Get("Content-Type")
		if ct != "" && !strings.HasPrefix(ct, "image/") {
			p.Close()
			continue // skip non-image parts (some servers interleave metadata)
		}
		data, err := readPart(p)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("mjpeg source %s: %w", m.url, err)
		}
		if len(data) > maxFrameBytes {
			return nil, fmt.Errorf("mjpeg source %s: frame larger than %d MiB", m.url, maxFrameBytes>>20)
		}
		if len(data) == 0 {
			continue
		}
		return &Capture{Data: data, Time: time.Now()}, nil
	}
}

// readPart reads one frame. With a Content-Length it reads exactly that and returns at
// once; without, the end of the frame is only known when the next boundary arrives,
// which delays each frame by one frame interval. The part is not closed: Close would
// wait for the next boundary too, and NextPart skips the rest anyway.
func readPart(p *multipart.Part) ([]byte, error) {
	if n, err := strconv.Atoi(p.Header.Get("Content-Length")); err == nil && n > 0 {
		if n > maxFrameBytes {
			return nil, fmt.Errorf("frame of %d bytes is larger than %d MiB", n, maxFrameBytes>>20)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(p, data); err != nil {
			return nil, err
		}
		return data, nil
	}
	return io.ReadAll(io.LimitReader(p, maxFrameBytes+1))
}

func (m *mjpegSource) Live() bool { return true }
func (m *mjpegSource) Close() error {
	m.cancel()
	return m.body.Close()
}
func (m *mjpegSource) String() string { return m.url }

// snapshotMinInterval bounds how often a snapshot URL is polled: cameras are small
// computers too.
const snapshotMinInterval = 100 * time.Millisecond

// snapshotSource polls a URL that returns one image per request.
type snapshotSource struct {
	url, shown string
	client     *http.Client
	first      []byte // the body of the request that identified the URL
	last       time.Time
}

func (s *snapshotSource) Next(ctx context.Context) (*Capture, error) {
	if s.first != nil {
		data := s.first
		s.first, s.last = nil, time.Now()
		return &Capture{Data: data, Time: s.last}, nil
	}
	if d := snapshotMinInterval - time.Since(s.last); d > 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(d):
		}
	}
	s.last = time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("snapshot source %s: %w", s.shown, err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("snapshot source: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("snapshot source %s: HTTP %s", s.shown, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxFrameBytes+1))
	if err != nil {
		return nil, fmt.Errorf("snapshot source %s: %w", s.shown, err)
	}
	if len(data) > maxFrameBytes {
		return nil, fmt.Errorf("snapshot source %s: image larger than %d MiB", s.shown, maxFrameBytes>>20)
	}
	return &Capture{Data: data, Time: time.Now()}, nil
}

func (s *snapshotSource) Live() bool     { return true }
func (s *snapshotSource) Close() error   { return nil }
func (s *snapshotSource) String() string { return s.shown }
