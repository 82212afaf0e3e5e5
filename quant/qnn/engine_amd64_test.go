//go:build amd64 && !purego

package qnn

// scalarKernels makes engines built until restore use the Go kernels.
func scalarKernels() (restore func()) {
	old := useVPOPCNT
	useVPOPCNT = false
	return func() { useVPOPCNT = old }
}
