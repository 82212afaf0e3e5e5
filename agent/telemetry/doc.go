// Package telemetry owns the agent's kernel-side measurements: small eBPF programs
// (written with github.com/cilium/ebpf's asm package, no clang, no BTF/CO-RE) that
// record where a frame's time goes outside the agent's own code.
//
//   - run-queue latency of the agent's threads (sched_wakeup, sched_wakeup_new and
//     sched_switch tracepoints; log2 histogram),
//   - off-CPU time of registered threads (the pipeline thread), per frame,
//   - the kernel time of each bitstream programming (kprobe/kretprobe on the FPGA
//     manager's load function, when the kernel has kprobes and the symbol),
//   - interrupt counts of the overlay's interrupt lines (irq_handler_entry tracepoint,
//     or /proc/interrupts deltas when the tracepoint cannot be used).
//
// Tracepoint field offsets come from the tracefs format files at load time, so the
// programs load on any kernel with BPF tracepoint support, 32-bit ARM included. The
// programs use per-CPU maps and plain adds instead of atomic adds because the 32-bit
// ARM JIT does not implement BPF atomics.
//
// Every probe is optional: Open loads what the kernel allows and lists what it could
// not load and why (Unavailable). Without bpf() at all (no root/CAP_BPF, qemu-user,
// non-Linux) Open returns an error wrapping ErrNotSupported.
package telemetry
