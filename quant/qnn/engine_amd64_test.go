//go:build amd64 && !purego

package qnn

// scalarKernels makes engines built until restore use the scalar kernels (the POPCNT
// assembly kernel where the CPU has it).
func scalarKernels() (restore func()) {
	old := useVPOPCNT
	useVPOPCNT = false
	return func() { useVPOPCNT = old }
}

// goKernels makes engines built until restore use the Go kernels only.
func goKernels() (restore func()) {
	old, oldPop, oldPext := useVPOPCNT, usePOPCNT, usePEXT
	useVPOPCNT, usePOPCNT, usePEXT = false, false, false
	return func() { useVPOPCNT, usePOPCNT, usePEXT = old, oldPop, oldPext }
}
