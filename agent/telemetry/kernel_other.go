//go:build !linux

package telemetry

import (
	"fmt"
	"runtime"
	"time"
)

// kernel is empty where eBPF is unavailable.
type kernel struct {
	sched *struct{}
}

// Open returns ErrNotSupported: eBPF telemetry needs Linux.
func Open(opt Options) (*Telemetry, error) {
	return nil, fmt.Errorf("kernel telemetry: %w: needs Linux (running on %s)", ErrNotSupported, runtime.GOOS)
}

func (k *kernel) runQueue() Histogram               { return Histogram{} }
func (k *kernel) fpgaLoads() (FPGALoads, bool)      { return FPGALoads{}, false }
func (k *kernel) irqCount(int) uint64               { return 0 }
func (k *kernel) track(int) error                   { return ErrNotSupported }
func (k *kernel) offCPU(int) (time.Duration, error) { return 0, ErrNotSupported }
func (k *kernel) close() error                      { return nil }
