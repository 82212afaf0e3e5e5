package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/jpeg"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fpgadetector/pynq-agent/web"
)

// pngBomb is a PNG header declaring a w x h image (what a 110 KB PNG of a 5790x5790
// flat image looks like to a decoder until it allocates the pixels).
func pngBomb(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 0, 0, 0, 0) // 8-bit grey
	chunk := append([]byte("IHDR"), ihdr...)
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	b.Write([]byte{0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82})
	return b.Bytes()
}

// jpegBomb is a small baseline JPEG whose frame header is patched to declare w x h.
func jpegBomb(w, h uint16) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, 16, 16)), nil); err != nil {
		panic(err)
	}
	data := b.Bytes()
	i := bytes.Index(data, []byte{0xff, 0xc0}) // SOF0: length(2) precision(1) height(2) width(2)
	binary.BigEndian.PutUint16(data[i+5:], h)
	binary.BigEndian.PutUint16(data[i+7:], w)
	return data
}

// allocated runs f and returns the bytes it allocated.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestImageBombs: a 5790x5790 PNG and a 65000x65000 JPEG are refused at every entry
// point of the agent from their headers (a few KB allocated, not the 1.3 GB their
// pixels take), with an error that names the size; /api/verify answers 400 and the
// pipeline skips the frame and goes on.
func TestImageBombs(t *testing.T) {
	skipSimPipelineInShort(t)
	c := faultConfig(t)
	a, err := New(context.Background(), c, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for name, bomb := range map[string][]byte{"png 5790x5790": pngBomb(5790, 5790), "jpeg 65000x65000": jpegBomb(65000, 65000)} {
		var err error
		n := allocated(func() { _, err = a.Verify(context.Background(), web.VerifyRequest{Image: bomb}) })
		if !errors.Is(err, web.ErrBadRequest) || !strings.Contains(err.Error(), "megapixels allowed") {
			t.Errorf("%s through /api/verify: %v", name, err)
		}
		if n > 1<<20 {
			t.Errorf("%s through /api/verify allocated %d bytes", name, n)
		}
	}

	var good bytes.Buffer
	if err := jpeg.Encode(&good, image.NewGray(image.Rect(0, 0, 64, 48)), nil); err != nil {
		t.Fatal(err)
	}
	src := &listSource{frames: [][]byte{pngBomb(5790, 5790), good.Bytes(), jpegBomb(65000, 65000), good.Bytes()}}
	p := NewPipeline(&fakeModel{}, PipelineOptions{Thresh: 0.5, Decoder: a.decoder()})
	pub := newCollector()
	runPipeline(t, p, opener(src), pub)
	waitFor(t, "the good frames", func() bool { return pub.count() == 2 && p.Stats().Errors == 2 })
}

// listSource emits its encoded frames once, then ends.
type listSource struct {
	frames [][]byte
	i      int
}

func (s *listSource) Next(ctx context.Context) (*Capture, error) {
	if s.i == len(s.frames) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	s.i++
	return &Capture{Data: s.frames[s.i-1], Time: time.Now()}, nil
}
func (s *listSource) Live() bool     { return false }
func (s *listSource) Close() error   { return nil }
func (s *listSource) String() string { return "list" }
