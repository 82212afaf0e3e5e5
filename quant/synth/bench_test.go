package synth

import "testing"

// BenchmarkRender416 renders one 416x416 scene per iteration (the dataset's default).
func BenchmarkRender416(b *testing.B) {
	rd := newRenderer(416, 416)
	for i := 0; b.Loop(); i++ {
		sc := newSceneDesc(int64(i), 416, 416)
		cam := sc.camera()
		rd.render(sc, cam, Options{}.withDefaults())
	}
}
