package synth

import (
	"image"
	"image/draw"
	"image/png"
	"math"
	"os"
	"testing"
)

// TestChairTypesSheet writes one row per chair type (front, three-quarter, side,
// back) when SYNTH_TYPES names the output file.
func TestChairTypesSheet(t *testing.T) {
	out := os.Getenv("SYNTH_TYPES")
	if out == "" {
		t.Skip("set SYNTH_TYPES=/tmp/types.png to draw the chair types")
	}
	const size = 200
	types := []func(b *builder) (float64, float64){
		func(b *builder) (float64, float64) { return b.sideChair(false) },
		func(b *builder) (float64, float64) { return b.sideChair(true) },
		(*builder).armchair, (*builder).officeChair, (*builder).foldingChair, (*builder).barChair,
	}
	poses := []float64{0, 0.7, 1.57, 3.14}
	sheet := image.NewRGBA(image.Rect(0, 0, len(poses)*size, len(types)*size))
	for i, mk := range types {
		for j, yaw := range poses {
			r := newRNG(int64(7*i+j), 0)
			sc := &scene{w: size, h: size, room: newRoom(r.fork()), camPos: v3(0, 1.3, 0), pitch: 0.35, post: post{gain: 1, tint: rgb{1, 1, 1}, gamma: 1}}
			sc.room.x0, sc.room.x1, sc.room.depth = -4, 4, 8
			sc.f = size / 2 / math.Tan(25*math.Pi/180)
			b := &builder{r: newRNG(int64(3*i+j), 0)}
			hw, hd := mk(b)
			sc.objs = append(sc.objs, b.place(Chair, v3(0, 0, 2.3), yaw, hw, hd))
			img, _ := newRenderer(size, size).render(sc, sc.camera(), Options{}.withDefaults())
			draw.Draw(sheet, img.Bounds().Add(image.Pt(j*size, i*size)), img, image.Point{}, draw.Src)
		}
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
