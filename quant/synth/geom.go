package synth

import "math"

// vec3 is a point or direction in metres. World axes: x right, y up, z away from
// the camera's rest direction; the floor is y = 0.
type vec3 struct{ X, Y, Z float64 }

func v3(x, y, z float64) vec3              { return vec3{x, y, z} }
func (a vec3) add(b vec3) vec3             { return vec3{a.X + b.X, a.Y + b.Y, a.Z + b.Z} }
func (a vec3) sub(b vec3) vec3             { return vec3{a.X - b.X, a.Y - b.Y, a.Z - b.Z} }
func (a vec3) scale(s float64) vec3        { return vec3{a.X * s, a.Y * s, a.Z * s} }
func (a vec3) dot(b vec3) float64          { return a.X*b.X + a.Y*b.Y + a.Z*b.Z }
func (a vec3) len() float64                { return math.Sqrt(a.dot(a)) }
func (a vec3) lerp(b vec3, t float64) vec3 { return a.add(b.sub(a).scale(t)) }

func (a vec3) cross(b vec3) vec3 {
	return vec3{a.Y*b.Z - a.Z*b.Y, a.Z*b.X - a.X*b.Z, a.X*b.Y - a.Y*b.X}
}

func (a vec3) norm() vec3 {
	l := a.len()
	if l == 0 {
		return a
	}
	return a.scale(1 / l)
}

// mat3 is a rotation; rows are the images of the basis vectors' coordinates.
type mat3 [3][3]float64

func (m mat3) mul(v vec3) vec3 {
	return vec3{
		m[0][0]*v.X + m[0][1]*v.Y + m[0][2]*v.Z,
		m[1][0]*v.X + m[1][1]*v.Y + m[1][2]*v.Z,
		m[2][0]*v.X + m[2][1]*v.Y + m[2][2]*v.Z,
	}
}

func (m mat3) mulm(n mat3) mat3 {
	var r mat3
	for i := range 3 {
		for j := range 3 {
			for k := range 3 {
				r[i][j] += m[i][k] * n[k][j]
			}
		}
	}
	return r
}

func (m mat3) transpose() mat3 {
	var r mat3
	for i := range 3 {
		for j := range 3 {
			r[i][j] = m[j][i]
		}
	}
	return r
}

// rotY turns about the vertical axis (positive: from +z towards +x).
func rotY(a float64) mat3 {
	s, c := math.Sincos(a)
	return mat3{{c, 0, s}, {0, 1, 0}, {-s, 0, c}}
}

// rotX tilts about the x axis (positive: +y towards +z, i.e. leaning back for a
// backrest whose front faces -z).
func rotX(a float64) mat3 {
	s, c := math.Sincos(a)
	return mat3{{1, 0, 0}, {0, c, -s}, {0, s, c}}
}

// rotZ rolls about the z axis.
func rotZ(a float64) mat3 {
	s, c := math.Sincos(a)
	return mat3{{c, -s, 0}, {s, c, 0}, {0, 0, 1}}
}

// camera is a pinhole camera; camera space has x right, y up, z forward.
type camera struct {
	pos    vec3
	rot    mat3 // world -> camera
	inv    mat3 // camera -> world
	f      float64
	cx, cy float64
}

func newCamera(pos vec3, yaw, pitch, roll, f float64, w, h int) *camera {
	// The camera turns by yaw about y, tilts down by pitch, then rolls about its axis.
	toWorld := rotY(yaw).mulm(rotX(pitch)).mulm(rotZ(roll))
	return &camera{pos: pos, inv: toWorld, rot: toWorld.transpose(), f: f, cx: float64(w) / 2, cy: float64(h) / 2}
}

func (c *camera) toCam(p vec3) vec3 { return c.rot.mul(p.sub(c.pos)) }

// project returns screen coordinates and the camera-space depth.
func (c *camera) project(p vec3) (x, y, z float64) {
	q := c.toCam(p)
	return c.cx + c.f*q.X/q.Z, c.cy - c.f*q.Y/q.Z, q.Z
}

// ray is the world direction through screen point (x, y).
func (c *camera) ray(x, y float64) vec3 {
	return c.inv.mul(vec3{(x - c.cx) / c.f, -(y - c.cy) / c.f, 1})
}

// rgb is a linear-ish colour with components near [0, 1].
type rgb struct{ R, G, B float64 }

func (a rgb) scale(s float64) rgb { return rgb{a.R * s, a.G * s, a.B * s} }
func (a rgb) mul(b rgb) rgb       { return rgb{a.R * b.R, a.G * b.G, a.B * b.B} }
func (a rgb) add(b rgb) rgb       { return rgb{a.R + b.R, a.G + b.G, a.B + b.B} }
func (a rgb) lerp(b rgb, t float64) rgb {
	return rgb{a.R + (b.R-a.R)*t, a.G + (b.G-a.G)*t, a.B + (b.B-a.B)*t}
}

// hsv builds a colour from hue (0..1), saturation and value.
func hsv(h, s, v float64) rgb {
	h = (h - math.Floor(h)) * 6
	i := int(h)
	f := h - float64(i)
	p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	switch i {
	case 0:
		return rgb{v, t, p}
	case 1:
		return rgb{q, v, p}
	case 2:
		return rgb{p, v, t}
	case 3:
		return rgb{p, q, v}
	case 4:
		return rgb{t, p, v}
	}
	return rgb{v, p, q}
}
