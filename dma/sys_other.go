//go:build !linux

package dma

func openDRMNode(path string) (drmDevice, error) {
	return nil, ErrNotSupported
}

func mapDevice(path string, size int, uncached bool) ([]byte, func([]byte) error, error) {
	return nil, nil, ErrNotSupported
}
