package web

import (
	"encoding/json"
	"errors"
	"image/color"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

func boxColor(classID int) color.RGBA { return imageio.ClassColor(classID, 0) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type builderWriter struct {
	httptest.ResponseRecorder
	out *strings.Builder
}

// recorder returns a ResponseWriter whose body lands in out.
func recorder(out *strings.Builder) http.ResponseWriter {
	return &builderWriter{ResponseRecorder: *httptest.NewRecorder(), out: out}
}

func (b *builderWriter) Write(p []byte) (int, error) { return b.out.Write(p) }

func mustReq(t *testing.T, method, path, body string) *http.Request {
	t.Helper()
	return httptest.NewRequest(method, path, strings.NewReader(body))
}

func TestHealthReadyStatus(t *testing.T) {
	e := newFeedEnv(t, HubOptions{}, ServerOptions{Version: "1.2.3"})
	if code, body := get(t, e.srv.URL+"/healthz"); code != 200 || body != "ok 1.2.3\n" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	if code, _ := get(t, e.srv.URL+"/readyz"); code != 200 {
		t.Fatalf("readyz when ready: %d", code)
	}
	e.b.mu.Lock()
	e.b.ready = false
	e.b.mu.Unlock()
	if code, _ := get(t, e.srv.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz when not ready: %d, want 503", code)
	}
	// Not ready because the source fails: /readyz says so, /api/status carries the error.
	e.b.mu.Lock()
	e.b.sourceErr = "open /dev/video0: no such device"
	e.b.mu.Unlock()
	if code, body := get(t, e.srv.URL+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "frame source failing (retrying): open /dev/video0: no such device") {
		t.Fatalf("readyz with a failing source: %d %q", code, body)
	}
	if _, body := get(t, e.srv.URL+"/api/status"); !strings.Contains(body, `"source_error":"open /dev/video0: no such device"`) {
		t.Fatalf("status with a failing source: %s", body)
	}
	e.b.mu.Lock()
	e.b.sourceErr = ""
	e.b.mu.Unlock()
	// Unhealthy: both answer 503 with the reason.
	e.b.mu.Lock()
	e.b.ready, e.b.unhealthy = true, errors.New("no frame completed for 31s")
	e.b.mu.Unlock()
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, e.srv.URL+path); code != http.StatusServiceUnavailable || !strings.Contains(body, "unhealthy: no frame completed for 31s") {
			t.Fatalf("%s when unhealthy: %d %q, want 503 with the reason", path, code, body)
		}
	}
	e.b.mu.Lock()
	e.b.unhealthy = nil
	e.b.mu.Unlock()
	e.dial(t, nil)
	waitViewers(t, e.hub, 1)
	code, body := get(t, e.srv.URL+"/api/status")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Viewers != 1 || st.Backend != "sim" {
		t.Fatalf("status: %d %v %+v", code, err, st)
	}
	if code, body := get(t, e.srv.URL+"/"); code != 200 || !strings.Contains(body, "<canvas") {
		t.Fatalf("page: %d %.80q", code, body)
	}
	for _, asset := range []string{"/app.js", "/style.css"} {
		if code, _ := get(t, e.srv.URL+asset); code != 200 {
			t.Fatalf("%s: %d", asset, code)
		}
	}
}

func TestControlHTTP(t *testing.T) {
	e := newFeedEnv(t, HubOptions{}, ServerOptions{Token: "s3cret", ReadLimit: 256})
	cases := []struct {
		name, method, auth, body string
		code                     int
		want                     string
	}{
		{"ok", "POST", "Bearer s3cret", `{"thresh":0.25,"classes":["chair"]}`, 200, `"thresh":0.25`},
		{"missing token", "POST", "", `{"thresh":0.4}`, 401, "missing token"},
		{"not bearer", "POST", "Basic czNjcmV0", `{"thresh":0.4}`, 401, "missing token"},
		{"bad token", "POST", "Bearer nope", `{"thresh":0.4}`, 403, "bad token"},
		{"malformed", "POST", "Bearer s3cret", `{"thresh":`, 400, "malformed"},
		{"wrong type", "POST", "Bearer s3cret", `{"thresh":"x"}`, 400, "malformed"},
		{"unknown field", "POST", "Bearer s3cret", `{"threshold":0.4}`, 400, "unknown field"},
		{"thresh high", "POST", "Bearer s3cret", `{"thresh":1.01}`, 400, "out of range"},
		{"thresh low", "POST", "Bearer s3cret", `{"thresh":-1}`, 400, "out of range"},
		{"empty", "POST", "Bearer s3cret", `{}`, 400, "empty control"},
		{"backend refuses", "POST", "Bearer s3cret", `{"classes":["unicorn"]}`, 400, "unknown class"},
		{"too big", "POST", "Bearer s3cret", `{"classes":["` + strings.Repeat("a", 300) + `"]}`, 413, "limit"},
		{"get", "GET", "Bearer s3cret", ``, 405, "POST"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, e.srv.URL+"/api/control", strings.NewReader(tc.body))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, resp.StatusCode, body, tc.code, tc.want)
		}
	}
	if st := e.b.Status(); st.Thresh != 0.25 || e.b.count() != 1 {
		t.Fatalf("backend thresh %v after %d controls", st.Thresh, e.b.count())
	}
	// No token configured: control is off, whatever is presented.
	e2 := newFeedEnv(t, HubOptions{}, ServerOptions{})
	req, _ := http.NewRequest("POST", e2.srv.URL+"/api/control", strings.NewReader(`{"thresh":0.5}`))
	req.Header.Set("Authorization", "Bearer ")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("control without configured token: %d, want 403", resp.StatusCode)
	}
}

// metricLine is one sample of the text format: name, optional labels, a float value.
var metricLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*\})? [-+]?([0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?|NaN|\+Inf|-Inf)$`)

func TestMetricsParse(t *testing.T) {
	e := newFeedEnv(t, HubOptions{}, ServerOptions{})
	c := e.dial(t, nil)
	waitViewers(t, e.hub, 1)
	e.hub.Publish(solidFrame(1, 32, 24, grey))
	readFrame(t, c)
	code, body := get(t, e.srv.URL+"/metrics")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for i, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		if !metricLine.MatchString(line) {
			t.Errorf("line %d not in text format: %q", i+1, line)
		}
	}
	for _, want := range []string{"pynq_frames_total 42", "pynq_feed_viewers 1", "pynq_feed_frames_encoded_total 1",
		`pynq_feed_viewer_dropped_frames{viewer="1"} 0`, "pynq_feed_bytes_sent_total "} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestDetectionsRing(t *testing.T) {
	e := newFeedEnv(t, HubOptions{RecentDetections: 8, ThumbClasses: []string{"chair", "sofa"}}, ServerOptions{})
	for i := uint64(1); i <= 6; i++ {
		f := solidFrame(i, 64, 48, grey)
		f.Detections = append(f.Detections, Box{Class: "person", ClassID: 14, Score: 0.6, Box: [4]float32{0, 0, 10, 10}})
		e.hub.Publish(f)
		waitFor(t, "frame recorded", func() bool { r := e.hub.Recent("", 1); return len(r) == 1 && r[0].FrameID == i })
	}
	code, body := get(t, e.srv.URL+"/api/detections")
	var all []Detection
	if err := json.Unmarshal([]byte(body), &all); code != 200 || err != nil || len(all) != 8 {
		t.Fatalf("detections: %d %v len %d", code, err, len(all))
	}
	if all[0].FrameID != 6 || all[0].Class != "person" || all[0].Thumb != "" {
		t.Fatalf("newest first, person without thumbnail: %+v", all[0])
	}
	_, body = get(t, e.srv.URL+"/api/detections?class=chair&limit=2")
	var chairs []Detection
	json.Unmarshal([]byte(body), &chairs)
	if len(chairs) != 2 || chairs[0].FrameID != 6 || chairs[1].FrameID != 5 || !strings.HasPrefix(chairs[0].Thumb, "data:image/jpeg;base64,") {
		t.Fatalf("chairs: %+v", chairs)
	}
	_, body = get(t, e.srv.URL+"/api/detections?thumbs=1")
	var thumbs []Detection
	json.Unmarshal([]byte(body), &thumbs)
	if len(thumbs) != 4 || thumbs[3].FrameID != 3 {
		t.Fatalf("thumbs=1: %d entries %+v, want the 4 chairs left in the ring", len(thumbs), thumbs)
	}
	resp, err := http.Get(e.srv.URL + "/api/detections?thumbs=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/detections?thumbs=1", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Fatalf("unchanged ring with its ETag: %v %v, want 304", err, resp)
	}
	resp.Body.Close()
	if code, _ := get(t, e.srv.URL+"/api/detections?limit=-1"); code != 400 {
		t.Fatalf("limit=-1: %d", code)
	}
}

func TestThumbnailClamps(t *testing.T) {
	img := solidFrame(1, 64, 48, grey).Image
	for _, box := range [][4]float32{{-10, -10, 500, 500}, {60, 40, 2, 1}, {0, 0, 0, 0}, {10, 10, 200, 12}} {
		th := thumbnail(img, box, 32)
		if b := th.Bounds(); b.Empty() || b.Dx() > 64 || b.Dy() > 48 {
			t.Fatalf("box %v: thumbnail %v", box, b)
		}
	}
}

// FuzzParseControl: control bodies never panic, and what parses satisfies the checks.
func FuzzParseControl(f *testing.F) {
	for _, s := range []string{`{"thresh":0.5}`, `{"classes":["chair"],"paused":true}`, `{"thresh":1e400}`,
		`{"thresh":NaN}`, `{"type":"control","token":"t","thresh":0.1}`, `{`, `[]`, `null`, `{"classes":[""]}`, ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := parseControl(body)
		if err != nil {
			return
		}
		if c.Thresh == nil && c.Classes == nil && c.Paused == nil {
			t.Fatalf("empty control accepted: %q", body)
		}
		if c.Thresh != nil && !(*c.Thresh >= 0 && *c.Thresh <= 1) {
			t.Fatalf("thresh %v accepted: %q", *c.Thresh, body)
		}
	})
}
