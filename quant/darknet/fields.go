package darknet

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// fields reads typed values from one section, darknet style (the first occurrence of a
// key wins, absent keys take darknet's default), and keeps the first error.
type fields struct {
	file string
	s    *section
	err  error
}

func (f *fields) find(key string) *option {
	for _, o := range f.s.opts {
		if o.key == key {
			o.used = true
			return o
		}
	}
	return nil
}

// fail records an error about a key's value (o may be nil for a missing key).
func (f *fields) fail(o *option, key, format string, args ...any) {
	if f.err != nil {
		return
	}
	e := &CfgError{File: f.file, Line: f.s.line, Section: f.s.name, Key: key, Msg: fmt.Sprintf(format, args...)}
	if o != nil {
		e.Line = o.line
		e.Key = key + "=" + clip(o.val)
	}
	f.err = e
}

// failSection records an error about the section as a whole.
func (f *fields) failSection(format string, args ...any) {
	if f.err == nil {
		f.err = &CfgError{File: f.file, Line: f.s.line, Section: f.s.name, Msg: fmt.Sprintf(format, args...)}
	}
}

func parseInt(s string) (int, bool) {
	v, err := strconv.ParseInt(s, 10, 32)
	return int(v), err == nil
}

func parseFloat(s string) (float64, bool) {
	v, err := strconv.ParseFloat(s, 32)
	return v, err == nil && !math.IsInf(v, 0) && !math.IsNaN(v)
}

// int returns key's integer value in [lo, hi], or def when absent.
func (f *fields) int(key string, def, lo, hi int) int {
	o := f.find(key)
	if o == nil {
		return def
	}
	v, ok := parseInt(o.val)
	switch {
	case !ok:
		f.fail(o, key, "not an integer")
	case v < lo || v > hi:
		f.fail(o, key, "out of range: must be %s", rangeText(lo, hi))
	default:
		return v
	}
	return def
}

func rangeText(lo, hi int) string { return fmt.Sprintf("from %d to %d", lo, hi) }

// flag returns a 0/1 key as a bool.
func (f *fields) flag(key string) bool { return f.int(key, 0, 0, 1) == 1 }

// float returns key's finite value in [lo, hi], or def when absent.
func (f *fields) float(key string, def, lo, hi float64) float64 {
	o := f.find(key)
	if o == nil {
		return def
	}
	v, ok := parseFloat(o.val)
	switch {
	case !ok:
		f.fail(o, key, "not a finite number")
	case v < lo || v > hi:
		f.fail(o, key, "out of range: must be from %g to %g", lo, hi)
	default:
		return v
	}
	return def
}

func (f *fields) str(key, def string) string {
	if o := f.find(key); o != nil {
		return o.val
	}
	return def
}

// list splits a comma-separated value; a trailing comma is tolerated, as darknet does.
func (f *fields) list(o *option, key string, max int) []string {
	parts := strings.Split(strings.TrimSuffix(o.val, ","), ",")
	if len(parts) > max {
		f.fail(o, key, "%d values, at most %d are supported", len(parts), max)
		return nil
	}
	for _, p := range parts {
		if p == "" {
			f.fail(o, key, "empty entry in a comma-separated list")
			return nil
		}
	}
	return parts
}

// ints returns key's comma-separated integers (nil when absent).
func (f *fields) ints(key string, max int) []int {
	o := f.find(key)
	if o == nil {
		return nil
	}
	parts := f.list(o, key, max)
	out := make([]int, 0, len(parts))
	for _, p := range parts {
		v, ok := parseInt(p)
		if !ok {
			f.fail(o, key, "%q is not an integer", clip(p))
			return nil
		}
		out = append(out, v)
	}
	return out
}

// floats returns key's comma-separated finite numbers (nil when absent).
func (f *fields) floats(key string, max int) []float32 {
	o := f.find(key)
	if o == nil {
		return nil
	}
	parts := f.list(o, key, max)
	out := make([]float32, 0, len(parts))
	for _, p := range parts {
		v, ok := parseFloat(p)
		if !ok {
			f.fail(o, key, "%q is not a finite number", clip(p))
			return nil
		}
		out = append(out, float32(v))
	}
	return out
}

// unsupported fails when key is present with a value other than its default: a darknet
// feature that changes inference but that the quant IR does not model.
func (f *fields) unsupported(key, def, what string) {
	o := f.find(key)
	if o == nil || o.val == def {
		return
	}
	if a, ok := parseFloat(o.val); ok {
		if b, ok := parseFloat(def); ok && a == b {
			return
		}
	}
	f.fail(o, key, "%s is not supported (remove it or use the default %s)", what, def)
}
