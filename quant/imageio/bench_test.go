package imageio

import (
	"bytes"
	"image/jpeg"
	"os"
	"testing"

	"github.com/fpgadetector/pynq-agent/internal/testutil"
)

func benchJPEG(b *testing.B) []byte {
	b.Helper()
	data, err := os.ReadFile(testutil.Fixture(b, "qnn-mo-pynq", "images", "dog.jpg"))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkDecode measures the full decode (libjpeg-exact IDCT, fancy upsampling, colour
// conversion) of dog.jpg (768x576).
func BenchmarkDecode(b *testing.B) {
	data := benchJPEG(b)
	for i := 0; i < b.N; i++ {
		if _, err := DecodeRGBA(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeSTB measures the stb_image-exact decode of dog.jpg (its IDCT,
// upsampling and colour conversion), the QNN-MO models' default.
func BenchmarkDecodeSTB(b *testing.B) {
	data := benchJPEG(b)
	for i := 0; i < b.N; i++ {
		if _, err := DecodeRGBAWith(bytes.NewReader(data), STB); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStdlibJPEG is image/jpeg alone on the same file, for comparison.
func BenchmarkStdlibJPEG(b *testing.B) {
	data := benchJPEG(b)
	for i := 0; i < b.N; i++ {
		if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLetterbox416 measures darknet's letterbox of dog.jpg to 416x416.
func BenchmarkLetterbox416(b *testing.B) {
	im, err := Decode(bytes.NewReader(benchJPEG(b)))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Letterbox(im, 416, 416)
	}
}
