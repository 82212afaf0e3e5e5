package synth

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strconv"
	"testing"
)

// TestContactSheet writes a sheet of scenes with their boxes when SYNTH_SHEET names
// the output file (a look at the renderer, not a check).
func TestContactSheet(t *testing.T) {
	out := os.Getenv("SYNTH_SHEET")
	if out == "" {
		t.Skip("set SYNTH_SHEET=/tmp/synth.png to write a contact sheet")
	}
	n, cols, size, from := 16, 4, 320, 0
	if v, err := strconv.Atoi(os.Getenv("SYNTH_N")); err == nil {
		n, cols = v, int(math.Ceil(math.Sqrt(float64(v))))
	}
	if v, err := strconv.Atoi(os.Getenv("SYNTH_SIZE")); err == nil {
		size = v
	}
	if v, err := strconv.Atoi(os.Getenv("SYNTH_FROM")); err == nil {
		from = v
	}
	sheet := image.NewRGBA(image.Rect(0, 0, cols*size, (n+cols-1)/cols*size))
	for i := range n {
		img, boxes := RenderOptions(int64(from+i), size, size, Options{AllClasses: os.Getenv("SYNTH_ALL") != ""})
		for _, b := range boxes {
			c := color.RGBA{255, 0, 0, 255}
			if b.Class != Chair {
				c = color.RGBA{0, 160, 255, 255}
			}
			drawRect(img, b.Min, b.Max, c)
		}
		at := image.Pt(i%cols*size, i/cols*size)
		draw.Draw(sheet, img.Bounds().Add(at), img, image.Point{}, draw.Src)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, sheet); err != nil {
		t.Fatal(err)
	}
}

func drawRect(img *image.RGBA, a, b image.Point, c color.RGBA) {
	for x := a.X; x < b.X; x++ {
		img.SetRGBA(x, a.Y, c)
		img.SetRGBA(x, b.Y-1, c)
	}
	for y := a.Y; y < b.Y; y++ {
		img.SetRGBA(a.X, y, c)
		img.SetRGBA(b.X-1, y, c)
	}
}
