package dma

import (
	"errors"
	"fmt"
)

// OpenBoard returns the board's allocator: XRT zocl when a zocl render node exists
// (PYNQ >= 2.7), else u-dma-buf's udmabuf0. meminfo is where allocation failures read
// the CMA state ("" for DefaultMeminfo). The error matches ErrNotSupported when
// neither is available.
func OpenBoard(meminfo string) (Allocator, error) {
	z, zerr := OpenZocl(ZoclConfig{Meminfo: meminfo})
	if zerr == nil {
		return z, nil
	}
	u, uerr := OpenUdmabuf(UdmabufConfig{})
	if uerr == nil {
		return u, nil
	}
	return nil, fmt.Errorf("no contiguous-memory allocator on this system: %w", errors.Join(zerr, uerr))
}
