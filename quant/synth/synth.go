// Package synth renders synthetic indoor scenes with chairs and writes them as darknet
// datasets with exact boxes. It owns the scene model (a ray-cast room with textured
// floor and walls, parametric 3-D furniture drawn as convex solids in perspective,
// lighting and a camera look), the per-pixel object ownership that makes each box the
// tight rectangle of an object's visible pixels, and the dataset writer behind
// `pynqctl dataset synth`. A seed names a scene: the same seed and size give the same
// pixels on the same architecture, whichever worker renders it.
package synth

import "image"

// Render draws the scene named by seed at w x h and returns the frame and the boxes
// of its chairs.
func Render(seed int64, w, h int) (*image.RGBA, []Box) {
	return RenderOptions(seed, w, h, Options{})
}

// RenderOptions is Render with options (distractor boxes, visibility limits).
func RenderOptions(seed int64, w, h int, opt Options) (*image.RGBA, []Box) {
	sc := newSceneDesc(seed, w, h)
	cam := sc.camera()
	return newRenderer(w, h).render(sc, cam, opt.withDefaults())
}

// Scene is an endless stream of frames for a live source: the camera pans slowly
// across one room, and every RoomFrames frames the stream moves to a new room.
// A Scene is not safe for concurrent use.
type Scene struct {
	seed       int64
	w, h       int
	frame      int
	sc         *scene
	rd         *renderer
	swivel     []swivel
	RoomFrames int     // frames per room (default 300)
	Opt        Options // which objects get boxes
}

// NewScene starts a stream of w x h frames; the seed names the sequence of rooms.
func NewScene(seed int64, w, h int) *Scene {
	return &Scene{seed: seed, w: w, h: h, rd: newRenderer(w, h), RoomFrames: 300}
}

// Next renders the next frame and the boxes of its chairs.
func (s *Scene) Next() (*image.RGBA, []Box) {
	n := max(s.RoomFrames, 1)
	room := s.frame / n
	if s.sc == nil || s.frame%n == 0 {
		s.sc = newSceneDesc(s.seed*1_000_003+int64(room), s.w, s.h)
		s.swivel = s.swivel[:0]
		for _, o := range s.sc.objs {
			if o.class == Chair {
				s.swivel = append(s.swivel, swivel{o, o.yaw})
			}
		}
	}
	t := float64(s.frame%n) / float64(n)
	s.frame++
	// Someone fidgets: the first chair of the room swivels back and forth.
	if len(s.swivel) > 0 {
		sw := s.swivel[0]
		sw.o.move(sw.o.pos, sw.yaw0+0.6*sin2pi(2*t))
	}
	// A slow pan there and back with a slight dolly, as a hand-held camera drifts.
	pan := 0.12 * sin2pi(t)
	pos := s.sc.camPos.add(v3(0.15*sin2pi(t+0.25), 0.03*sin2pi(2*t), 0))
	cam := newCamera(pos, s.sc.yaw+pan, s.sc.pitch, s.sc.roll, s.sc.f, s.w, s.h)
	return s.rd.render(s.sc, cam, s.Opt.withDefaults())
}

// Frame returns the index of the next frame.
func (s *Scene) Frame() int { return s.frame }

// swivel is a chair that turns during a stream, with its starting yaw.
type swivel struct {
	o    *object
	yaw0 float64
}
