//go:build !linux

package agent

import "fmt"

// OpenV4L2 is Linux-only.
func OpenV4L2(path string, opt V4L2Options) (Source, error) {
	return nil, fmt.Errorf("v4l2 %s: %w (V4L2 is Linux-only)", path, ErrNotSupported)
}
