package bitstream

import (
	"errors"
	"fmt"
)

// PartPYNQZ2 is the part name a .bit for the PYNQ-Z2's xc7z020clg400-1 carries in field b.
const PartPYNQZ2 = "7z020clg400"

// ErrWrongPart is wrapped by PartError.
var ErrWrongPart = errors.New("bitstream is for another part")

// PartError refuses a bitstream built for a different FPGA than the board's: loading it
// fails at best and can damage I/O at worst.
type PartError struct {
	Got  string // part in the .bit header
	Want string // the board's part
}

func (e *PartError) Error() string {
	return fmt.Sprintf("bitstream is for part %q, the board is %q (rebuild for %s, or pass force / --force if you know it fits)",
		e.Got, e.Want, e.Want)
}

func (e *PartError) Unwrap() error { return ErrWrongPart }

// CheckPart returns a *PartError unless h was built for want (PartPYNQZ2 when empty) or
// force is set.
func (h *Header) CheckPart(want string, force bool) error {
	if want == "" {
		want = PartPYNQZ2
	}
	if force || h.Part == want {
		return nil
	}
	return &PartError{Got: h.Part, Want: want}
}
