package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// verifyBackend is a fakeBackend that verifies: it echoes the request.
type verifyBackend struct {
	fakeBackend
	last VerifyRequest
}

func (b *verifyBackend) Verify(_ context.Context, req VerifyRequest) (*VerifyResult, error) {
	b.last = req
	if string(req.Image) == "junk" {
		return nil, fmt.Errorf("%w: decode: not an image", ErrBadRequest)
	}
	return &VerifyResult{Width: len(req.Image), Thresh: req.Thresh, OutputSHA256: "ab", Feed: "interleaved", Detections: []Box{}}, nil
}

func TestVerifyHTTP(t *testing.T) {
	b := &verifyBackend{}
	srv := httptest.NewServer(NewServer(b, NewHub(HubOptions{}), ServerOptions{Token: "s3cret"}))
	defer srv.Close()
	plain := httptest.NewServer(NewServer(&fakeBackend{}, NewHub(HubOptions{}), ServerOptions{Token: "s3cret"}))
	defer plain.Close()
	cases := []struct {
		name, url, method, auth, body string
		code                          int
		want                          string
	}{
		{"ok", srv.URL + "/api/verify?thresh=0.005&dump=3", "POST", "Bearer s3cret", "JPEG", 200, `"width":4`},
		{"no token", srv.URL + "/api/verify", "POST", "", "JPEG", 401, "missing token"},
		{"bad token", srv.URL + "/api/verify", "POST", "Bearer x", "JPEG", 403, "bad token"},
		{"get", srv.URL + "/api/verify", "GET", "Bearer s3cret", "", 405, "POST"},
		{"bad thresh", srv.URL + "/api/verify?thresh=2", "POST", "Bearer s3cret", "JPEG", 400, "thresh"},
		{"bad trace", srv.URL + "/api/verify?trace=yes", "POST", "Bearer s3cret", "JPEG", 400, "trace"},
		{"bad dump", srv.URL + "/api/verify?dump=-1", "POST", "Bearer s3cret", "JPEG", 400, "dump"},
		{"bad image", srv.URL + "/api/verify", "POST", "Bearer s3cret", "junk", 400, "not an image"},
		{"no verifier", plain.URL + "/api/verify", "POST", "Bearer s3cret", "JPEG", 501, "cannot verify"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
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
	// The ok case: thresh and dump reach the backend, dump implies trace.
	req, _ := http.NewRequest("POST", srv.URL+"/api/verify?thresh=0.25&dump=3", strings.NewReader("JPEG"))
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var res VerifyResult
	json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if b.last.Thresh != 0.25 || !b.last.Trace || b.last.Dump != 3 || string(b.last.Image) != "JPEG" || res.Feed != "interleaved" {
		t.Errorf("backend got %+v, result %+v", b.last, res)
	}
}

// FuzzVerifyQuery: the query parser never panics and keeps dump >= 0 implying trace.
func FuzzVerifyQuery(f *testing.F) {
	for _, q := range []string{"", "thresh=0.005", "trace=1&dump=3", "dump=-1", "thresh=NaN", "thresh=1e400", "trace=yes", "dump=99999999999999999999", "%zz"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		r := httptest.NewRequest("POST", "/api/verify", nil)
		r.URL.RawQuery = q
		req, err := parseVerifyQuery(r)
		if err != nil {
			return
		}
		if req.Dump >= 0 && !req.Trace || req.Thresh < 0 || req.Thresh >= 1 {
			t.Fatalf("%q: %+v", q, req)
		}
	})
}
