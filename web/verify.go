package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Verification (POST /api/verify): `pynqctl verify` sends validation images to the
// agent and compares what the board path computes with the host reference. The agent
// runs them between live frames; the feed keeps going (see the agent's Verify).

// VerifyRequest is one verification image and what to report about it.
type VerifyRequest struct {
	Image  []byte  // JPEG or PNG file bytes, decoded as the agent decodes frames
	Thresh float32 // detection threshold; 0 = the agent's current one
	Trace  bool    // also hash every engine layer's output (Layers)
	Dump   int     // with Trace, return the full output of this layer index (Dump); -1 none
}

// VerifyResult is the board path's account of one image.
type VerifyResult struct {
	Width   int     `json:"width"`
	Height  int     `json:"height"`
	Decoder string  `json:"decoder"` // JPEG decoding used ("stb", "libjpeg")
	Thresh  float32 `json:"thresh"`
	// InputSHA256 and OutputSHA256 are the SHA-256 of the packed engine input and
	// output (DDR layout; padding bits zeroed, so they depend only on the levels).
	InputSHA256  string        `json:"input_sha256"`
	OutputSHA256 string        `json:"output_sha256"`
	Detections   []Box         `json:"detections"` // every class above Thresh, no class filter
	EngineMS     float64       `json:"engine_ms"`
	Layers       []LayerDigest `json:"layers,omitempty"`
	Dump         *LayerDump    `json:"dump,omitempty"`
	// Feed says what the live feed did meanwhile: "interleaved" (kept running; the
	// engine took this image between two frames).
	Feed string `json:"feed"`
}

// LayerDigest is one engine layer's output in a traced run.
type LayerDigest struct {
	Index    int    `json:"index"`
	Name     string `json:"name"`
	Channels int    `json:"channels"`
	Dim      int    `json:"dim"`
	SHA256   string `json:"sha256"`
}

// LayerDump is one engine layer's full output (DDR layout, 192-byte records in the
// engine's transposed pixel order), base64 in JSON.
type LayerDump struct {
	LayerDigest
	RecordBytes int    `json:"record_bytes"`
	Data        []byte `json:"data"`
}

// Verifier is a Backend that can verify images (the agent with a QNN model).
type Verifier interface {
	Verify(ctx context.Context, req VerifyRequest) (*VerifyResult, error)
}

// ErrBadRequest is wrapped by Verify errors caused by the request (not an image, too
// big, a layer index out of range): the server answers 400 instead of 500.
var ErrBadRequest = errors.New("bad verification request")

// ErrNoVerify is wrapped when the backend cannot verify (a float model): 501.
var ErrNoVerify = errors.New("verification not supported")

// maxVerifyImage bounds a verification upload.
const maxVerifyImage = 32 << 20

// verify answers POST /api/verify?thresh=T&trace=1&dump=K with the image as the body.
func (s *server) verify(w http.ResponseWriter, r *http.Request) {
	if !s.authorizedPost(w, r, "use POST with the image (JPEG or PNG) as the body") {
		return
	}
	v, ok := s.b.(Verifier)
	if !ok {
		http.Error(w, "this agent cannot verify", http.StatusNotImplemented)
		return
	}
	req, err := parseVerifyQuery(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if req.Image, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxVerifyImage)); err != nil {
		http.Error(w, fmt.Sprintf("read image: %v (limit %d bytes)", err, maxVerifyImage), http.StatusRequestEntityTooLarge)
		return
	}
	res, err := v.Verify(r.Context(), req)
	switch {
	case errors.Is(err, ErrBadRequest):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, ErrNoVerify):
		http.Error(w, err.Error(), http.StatusNotImplemented)
	case err != nil:
		s.opt.Logger.Warn("verify failed", "err", err)
		http.Error(w, "verify: "+err.Error(), http.StatusInternalServerError)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

func parseVerifyQuery(r *http.Request) (VerifyRequest, error) {
	q := r.URL.Query()
	req := VerifyRequest{Dump: -1}
	if v := q.Get("thresh"); v != "" {
		t, err := strconv.ParseFloat(v, 32)
		if err != nil || !(t > 0 && t < 1) {
			return req, fmt.Errorf("thresh %q: want a number between 0 and 1", v)
		}
		req.Thresh = float32(t)
	}
	switch q.Get("trace") {
	case "", "0", "false":
	case "1", "true":
		req.Trace = true
	default:
		return req, fmt.Errorf("trace %q: want 1 or 0", q.Get("trace"))
	}
	if v := q.Get("dump"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 0 {
			return req, fmt.Errorf("dump %q: want a layer index (0 = first engine layer)", v)
		}
		req.Dump, req.Trace = k, true
	}
	return req, nil
}
