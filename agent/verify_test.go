package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/quant/boxes"
	"github.com/fpgadetector/pynq-agent/quant/detector"
	"github.com/fpgadetector/pynq-agent/quant/imageio"
	"github.com/fpgadetector/pynq-agent/quant/qnnmo"
	"github.com/fpgadetector/pynq-agent/web"
)

// verifyServer is the sim agent behind its HTTP API with token "t0k".
func verifyServer(tb testing.TB) (*Agent, *httptest.Server) {
	tb.Helper()
	cfg := simConfig(tb)
	a, err := New(context.Background(), cfg, quietLog())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	hub := web.NewHub(web.HubOptions{})
	tb.Cleanup(hub.Close)
	srv := httptest.NewServer(web.NewServer(a, hub, web.ServerOptions{Token: "t0k"}))
	tb.Cleanup(srv.Close)
	return a, srv
}

func postVerify(tb testing.TB, url, token string, body []byte) (*http.Response, *web.VerifyResult) {
	tb.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(string(body)))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return resp, nil
	}
	var res web.VerifyResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		tb.Fatal(err)
	}
	return resp, &res
}

// TestVerifyEndpoint: POST /api/verify on the sim agent gives the host reference's
// engine input and output digests and detections for dog.jpg, per-layer digests equal
// to the host engine's trace, a layer dump, and refuses without the token.
func TestVerifyEndpoint(t *testing.T) {
	skipSimPipelineInShort(t)
	a, srv := verifyServer(t)
	path := filepath.Join(a.cfg.SourceInput(), "dog.jpg")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := postVerify(t, srv.URL+"/api/verify", "", data); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	if resp, _ := postVerify(t, srv.URL+"/api/verify", "t0k", []byte("not an image")); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("junk image: %d", resp.StatusCode)
	}
	_, res := postVerify(t, srv.URL+"/api/verify?thresh=0.24&trace=1&dump=2", "t0k", data)
	if res == nil {
		t.Fatal("verify failed")
	}
	// Status right after the image: active for verifyLinger after it, then idle. Checked
	// here, not after the host reference below: that takes longer than verifyLinger
	// under qemu-user, and the linger is wall-clock time.
	if v, _ := a.Status().Extra["verification"].(map[string]any); v["images"] != uint64(1) || v["active"] != true {
		t.Errorf("status verification just after an image %v", v)
	}
	a.verifyLast.Store(time.Now().Add(-2 * verifyLinger).UnixNano())
	if v, _ := a.Status().Extra["verification"].(map[string]any); v["images"] != uint64(1) || v["active"] != false {
		t.Errorf("status verification %v after the linger", v)
	}

	t.Setenv("AGENT_TEST_PARAMS", a.cfg.Model.Dir)
	det, err := hostReference()
	if err != nil {
		t.Fatal(err)
	}
	img, _ := imageio.LoadWith(path, qnnmo.ImageDecoder)
	fr := &detector.Frame{Image: img}
	if err := det.Prepare(fr); err != nil {
		t.Fatal(err)
	}
	in, net := fr.In, det.Network()
	outs, err := net.Engine.RunTrace(in)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := EngineLayers(det.Model())
	wantIn, _ := PackedSHA256(in, net.First.OutLayout())
	wantOut, _ := PackedSHA256(outs[len(outs)-1], net.Engine.OutLayout())
	if res.InputSHA256 != wantIn || res.OutputSHA256 != wantOut {
		t.Errorf("digests in %s out %s, host %s %s", res.InputSHA256, res.OutputSHA256, wantIn, wantOut)
	}
	if len(res.Layers) != len(outs) || res.Dump == nil || res.Dump.Index != 2 {
		t.Fatalf("%d layers, dump %v; host %d layers", len(res.Layers), res.Dump != nil, len(outs))
	}
	for k, l := range res.Layers {
		if want, _ := PackedSHA256(outs[k], layers[k].Layout); l.SHA256 != want || l.Name != layers[k].Name {
			t.Errorf("layer %d %s: %s, host %s %s", k, l.Name, l.SHA256, layers[k].Name, want)
		}
	}
	cands, _ := det.Detect(img, 0.24)
	want := boxes.Objects(cands, 0.24, a.Names(), img.W, img.H)
	got := map[string]int{}
	for k, b := range res.Detections {
		if k >= len(want) || b != (web.Box{Class: want[k].Name, ClassID: want[k].Class, Score: want[k].Score, Box: want[k].Box}) {
			t.Errorf("detection %d: %+v, host %v", k, b, want)
		}
		if _, ok := got[b.Class]; !ok { // the best box of each class comes first
			got[b.Class] = int(b.Score*100 + .5)
		}
	}
	if fmt.Sprint(got) != "map[bicycle:78 car:86 dog:86]" || res.Feed != FeedDuringVerify || res.Decoder != "stb" {
		t.Errorf("dog.jpg: %v feed %q decoder %q", got, res.Feed, res.Decoder)
	}
}

// TestVerifyWhileServing: the feed keeps publishing while images are verified.
func TestVerifyWhileServing(t *testing.T) {
	skipSimPipelineInShort(t)
	a, srv := verifyServer(t)
	loop := true
	a.cfg.Source.Loop = &loop
	pub := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Serve(ctx, pub) }()
	defer func() { cancel(); <-done }()
	data, _ := os.ReadFile(filepath.Join(a.cfg.SourceInput(), "horses.jpg"))
	waitFor(t, "a frame", func() bool { return pub.count() > 0 })
	for range 3 {
		if _, res := postVerify(t, srv.URL+"/api/verify", "t0k", data); res == nil || len(res.Detections) == 0 {
			t.Fatalf("verify: %+v", res)
		}
	}
	n := pub.count()
	waitFor(t, "frames after verifying", func() bool { return pub.count() > n })
}
