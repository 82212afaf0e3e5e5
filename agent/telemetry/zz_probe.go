package telemetry
import (
 _ "github.com/cilium/ebpf"
 _ "github.com/cilium/ebpf/asm"
 _ "github.com/cilium/ebpf/link"
 _ "github.com/cilium/ebpf/rlimit"
)
