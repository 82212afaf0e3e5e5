//go:build !amd64 || purego

package qnnmo

// scalarKernels: this build has only the Go kernels.
func scalarKernels() (restore func()) { return func() {} }

// goKernels: this build has only the Go kernels.
func goKernels() (restore func()) { return func() {} }
