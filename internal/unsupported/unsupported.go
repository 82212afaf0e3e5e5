// Package unsupported makes the project's "not supported" errors one kind. Each package
// keeps its own sentinel, whose message says what is missing (a kernel without the FPGA
// manager, a platform without zocl, a model the ONNX writer cannot express...), and
// errors.Is(err, errors.ErrUnsupported) holds for every one of them.
package unsupported

import "errors"

// Error is a "not supported" sentinel that is also errors.ErrUnsupported.
type Error string

func (e Error) Error() string { return string(e) }

// Is makes errors.Is(e, errors.ErrUnsupported) true.
func (e Error) Is(target error) bool { return target == errors.ErrUnsupported }
