package imageio

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Label is one box to draw: corners in pixels of the image drawn on, a caption, and the
// class index that picks the colour (darknet's palette, so colours match its
// predictions.jpg).
type Label struct {
	Box     [4]float32 // x1, y1, x2, y2
	Text    string
	Class   int
	Classes int // number of classes of the model, for the colour spread; 0 means 80
}

// darknetPalette is the colour ramp of darknet's get_color.
var darknetPalette = [6][3]float32{{1, 0, 1}, {0, 0, 1}, {0, 1, 1}, {0, 1, 0}, {1, 1, 0}, {1, 0, 0}}

// ClassColor returns darknet's colour for a class: an offset spread over the palette.
func ClassColor(class, classes int) color.RGBA {
	if classes <= 0 {
		classes = 80
	}
	offset := (class * 123457) % classes
	var rgb [3]uint8
	for c, x := range [3]int{2, 1, 0} { // darknet asks for red with index 2
		ratio := float32(offset) / float32(classes) * 5
		i, j := int(ratio), int(ratio)+1
		ratio -= float32(i)
		if j > 5 {
			j = 5
		}
		v := (1-ratio)*darknetPalette[i][x] + ratio*darknetPalette[j][x]
		rgb[c] = uint8(v * 255)
	}
	return color.RGBA{rgb[0], rgb[1], rgb[2], 255}
}

// Draw draws each label as a rectangle outline (width scaled to the image height, as
// darknet does) with its caption on a filled strip above the box.
func Draw(dst draw.Image, labels []Label) {
	b := dst.Bounds()
	thick := max(1, b.Dy()/200)
	face := basicfont.Face7x13
	var captions []image.Rectangle // drawn so far, so that captions do not cover each other
	for _, l := range labels {
		col := ClassColor(l.Class, l.Classes)
		x1, y1 := clampInt(int(l.Box[0]), b.Min.X, b.Max.X-1), clampInt(int(l.Box[1]), b.Min.Y, b.Max.Y-1)
		x2, y2 := clampInt(int(l.Box[2]), b.Min.X, b.Max.X-1), clampInt(int(l.Box[3]), b.Min.Y, b.Max.Y-1)
		for t := 0; t < thick; t++ {
			outline(dst, image.Rect(x1-t, y1-t, x2+t+1, y2+t+1).Intersect(b), col)
		}
		if l.Text == "" {
			continue
		}
		width := font.MeasureString(face, l.Text).Ceil() + 4
		top := y1 - face.Height - 2
		if top < b.Min.Y {
			top = y1 // no room above: put the caption inside the box
		}
		strip := image.Rect(x1, top, x1+width, top+face.Height+2)
		for tries := 0; tries < 8 && overlapsAny(strip, captions); tries++ {
			strip = strip.Add(image.Pt(0, face.Height+2)) // next line down, inside the box
		}
		top = strip.Min.Y
		captions = append(captions, strip)
		strip = strip.Intersect(b)
		draw.Draw(dst, strip, image.NewUniform(col), image.Point{}, draw.Src)
		d := font.Drawer{Dst: dst, Src: image.NewUniform(textColor(col)), Face: face,
			Dot: fixed.P(x1+2, top+face.Ascent+1)}
		d.DrawString(l.Text)
	}
}

func overlapsAny(r image.Rectangle, others []image.Rectangle) bool {
	for _, o := range others {
		if r.Overlaps(o) {
			return true
		}
	}
	return false
}

// textColor picks black or white, whichever reads better on the strip colour.
func textColor(bg color.RGBA) color.Color {
	if 299*int(bg.R)+587*int(bg.G)+114*int(bg.B) > 128*1000 {
		return color.Black
	}
	return color.White
}

func outline(dst draw.Image, r image.Rectangle, c color.Color) {
	if r.Empty() {
		return
	}
	for x := r.Min.X; x < r.Max.X; x++ {
		dst.Set(x, r.Min.Y, c)
		dst.Set(x, r.Max.Y-1, c)
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		dst.Set(r.Min.X, y, c)
		dst.Set(r.Max.X-1, y, c)
	}
}

func clampInt(v, lo, hi int) int { return max(lo, min(v, hi)) }

// Save writes an image as PNG or JPEG (quality 90), chosen by the file extension.
func Save(path string, img image.Image) error {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".png" && ext != ".jpg" && ext != ".jpeg" {
		return fmt.Errorf("save %s: unknown extension %q (use .jpg or .png)", path, ext)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("save image: %w", err)
	}
	if ext == ".png" {
		err = png.Encode(f, img)
	} else {
		err = jpeg.Encode(f, img, &jpeg.Options{Quality: 90})
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}
