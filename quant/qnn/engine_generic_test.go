//go:build !amd64 || purego

package qnn

// scalarKernels: this build has only the Go kernels.
func scalarKernels() (restore func()) { return func() {} }
