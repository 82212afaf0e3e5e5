package jpegenc

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// psnr compares two images' RGB in dB.
func psnr(a, b image.Image) float64 {
	r := a.Bounds()
	var se float64
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			for _, d := range []float64{float64(r1>>8) - float64(r2>>8), float64(g1>>8) - float64(g2>>8), float64(b1>>8) - float64(b2>>8)} {
				se += d * d
				n++
			}
		}
	}
	if se == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/(se/float64(n)))
}

// testImages: a photo when the fixtures are there, a smooth gradient with odd sizes and
// a noisy one (which exercises long codes and 0xFF stuffing).
func testImages(t *testing.T) map[string]image.Image {
	imgs := map[string]image.Image{}
	grad := image.NewRGBA(image.Rect(0, 0, 37, 23))
	for y := 0; y < 23; y++ {
		for x := 0; x < 37; x++ {
			grad.Set(x, y, color.RGBA{uint8(7 * x), uint8(11 * y), uint8(3*x + 5*y), 255})
		}
	}
	imgs["gradient 37x23"] = grad
	rng := rand.New(rand.NewPCG(1, 1))
	noise := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for i := range noise.Pix {
		noise.Pix[i] = uint8(rng.IntN(256))
	}
	imgs["noise 64x48"] = noise
	p := filepath.Join("..", "..", "..", "shared", "fixtures", "qnn-mo-pynq", "images", "dog.jpg")
	if f, err := os.Open(p); err == nil {
		if img, err := jpeg.Decode(f); err == nil {
			imgs["dog.jpg"] = img
		}
		f.Close()
	} else {
		t.Logf("no photo (%v): gradient and noise only", err)
	}
	return imgs
}

// Every image decodes with image/jpeg to what was encoded, about as closely as
// image/jpeg's own encoding at the same quality.
func TestEncodeDecodes(t *testing.T) {
	for name, img := range testImages(t) {
		for _, q := range []int{50, 75, 90} {
			var ours, std bytes.Buffer
			if err := Encode(&ours, img, q); err != nil {
				t.Fatal(err)
			}
			got, err := jpeg.Decode(bytes.NewReader(ours.Bytes()))
			if err != nil {
				t.Fatalf("%s q%d: image/jpeg cannot decode it: %v", name, q, err)
			}
			if got.Bounds() != image.Rect(0, 0, img.Bounds().Dx(), img.Bounds().Dy()) {
				t.Fatalf("%s: decoded bounds %v", name, got.Bounds())
			}
			if err := jpeg.Encode(&std, img, &jpeg.Options{Quality: q}); err != nil {
				t.Fatal(err)
			}
			ref, _ := jpeg.Decode(bytes.NewReader(std.Bytes()))
			p, pStd := psnr(img, got), psnr(img, ref)
			t.Logf("%s q%d: %d bytes, %.1f dB (image/jpeg: %d bytes, %.1f dB)", name, q, ours.Len(), p, std.Len(), pStd)
			if p < pStd-1.5 {
				t.Errorf("%s q%d: %.1f dB, image/jpeg %.1f dB", name, q, p, pStd)
			}
		}
	}
}

// YCbCr 4:2:2 planes (a camera's frame) go straight in.
func TestEncodeYCbCr422(t *testing.T) {
	img := image.NewYCbCr(image.Rect(0, 0, 40, 16), image.YCbCrSubsampleRatio422)
	for i := range img.Y {
		img.Y[i] = uint8(i)
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = uint8(100+i%50), uint8(150-i%40)
	}
	var buf bytes.Buffer
	if err := Encode(&buf, img, 85); err != nil {
		t.Fatal(err)
	}
	got, err := jpeg.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if p := psnr(img, got); p < 30 {
		t.Errorf("YCbCr image: %.1f dB", p)
	}
}

func BenchmarkEncode640x480(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for y := 0; y < 480; y++ {
		for x := 0; x < 640; x++ {
			img.Set(x, y, color.RGBA{uint8(x + rng.IntN(20)), uint8(y + rng.IntN(20)), uint8(x ^ y), 255})
		}
	}
	var buf bytes.Buffer
	b.Run("jpegenc", func(b *testing.B) {
		for b.Loop() {
			buf.Reset()
			Encode(&buf, img, 75)
		}
	})
	b.Run("image/jpeg", func(b *testing.B) {
		for b.Loop() {
			buf.Reset()
			jpeg.Encode(&buf, img, &jpeg.Options{Quality: 75})
		}
	})
}

// On ARM the NEON quantizer gives the Go one's values.
func TestQuantizeNEONEqualsGo(t *testing.T) {
	if !haveNEON {
		t.Skip("no NEON on this machine (the board's kernel runs under scripts/test-arm.sh)")
	}
	rng := rand.New(rand.NewPCG(3, 3))
	for range 1000 {
		var blk, recip [64]int32
		for k := range blk {
			blk[k] = int32(rng.IntN(32768)) - 16384
			recip[k] = int32(1 + rng.IntN(8192))
		}
		want := blk
		for k := range want {
			want[k] = quantize(want[k], recip[k])
		}
		quantizeNEON(&blk, &recip)
		if blk != want {
			t.Fatalf("NEON %v, Go %v", blk, want)
		}
	}
}

// On ARM the NEON DCT gives fdctGo's values, for level-shifted samples
// (random, and the extremes).
func TestFDCTNEONEqualsGo(t *testing.T) {
	if !haveNEON {
		t.Skip("no NEON on this machine (the board's kernel runs under scripts/test-arm.sh)")
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for i := range 2000 {
		var blk [64]int32
		for k := range blk {
			switch i % 4 {
			case 0:
				blk[k] = -128 + 255*int32(rng.IntN(2))
			default:
				blk[k] = int32(rng.IntN(256)) - 128
			}
		}
		want := blk
		fdctGo(&want)
		got := blk
		fdctNEON(&got)
		if got != want {
			t.Fatalf("block %v: NEON %v, Go %v", blk, got, want)
		}
	}
}

// On ARM the NEON load gives the Go loop's samples.
func TestLoadNEONEqualsGo(t *testing.T) {
	if !haveNEON {
		t.Skip("no NEON on this machine (the board's kernel runs under scripts/test-arm.sh)")
	}
	const stride = 37
	p := make([]uint8, stride*20)
	for i := range p {
		p[i] = uint8(i * 13)
	}
	for _, at := range [][2]int{{0, 0}, {3, 5}, {29, 12}} {
		var want, got [64]int32
		for r := 0; r < 8; r++ {
			for c := 0; c < 8; c++ {
				want[8*r+c] = int32(p[(at[1]+r)*stride+at[0]+c]) - 128
			}
		}
		loadNEON(&got, &p[at[1]*stride+at[0]], stride)
		if got != want {
			t.Fatalf("at %v: NEON %v, Go %v", at, got, want)
		}
	}
}
