//go:build linux

package telemetry

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Layout of a value of the threads map (key: u32 tid).
const (
	offWake       = 0  // ns when the thread became runnable (0: not waiting)
	offOut        = 8  // ns when a tracked thread was switched out (0: on CPU)
	offOffCPU     = 16 // accumulated off-CPU ns of a tracked thread
	offTracked    = 24 // non-zero: accumulate off-CPU time
	threadValSize = 32
)

// threadVal mirrors a threads map value.
type threadVal struct {
	Wake, Out, OffCPU, Tracked uint64
}

// histSumKey is the slot of the run-queue histogram map holding the sum of ns.
const histSumKey = HistBuckets

// fpgaVal mirrors the single fpga stats map value.
type fpgaVal struct {
	Count, Sum, Last, Max uint64
}

const bpfNoExist = 1 // BPF_NOEXIST flag of map_update_elem

// builder assembles a program; label names the next emitted instruction.
type builder struct {
	ins     asm.Instructions
	pending string
	err     error
}

func (b *builder) emit(ins ...asm.Instruction) {
	for _, in := range ins {
		if b.pending != "" {
			in = in.WithSymbol(b.pending)
			b.pending = ""
		}
		b.ins = append(b.ins, in)
	}
}

func (b *builder) label(name string) {
	if b.pending != "" && b.err == nil {
		b.err = fmt.Errorf("labels %s and %s on one instruction", b.pending, name)
	}
	b.pending = name
}

// stackPtr points r at the stack slot fp+off.
func (b *builder) stackPtr(r asm.Register, off int16) {
	b.emit(asm.Mov.Reg(r, asm.RFP), asm.Add.Imm(r, int32(off)))
}

// lookup calls map_lookup_elem(m, fp+keyOff); R0 = value pointer or 0.
func (b *builder) lookup(m *ebpf.Map, keyOff int16) {
	b.emit(asm.LoadMapPtr(asm.R1, m.FD()))
	b.stackPtr(asm.R2, keyOff)
	b.emit(asm.FnMapLookupElem.Call())
}

// addAt adds src (a register) to the u64 at m[fp+keyOff]. Per-CPU maps make the plain
// load/add/store safe without BPF atomics (which the 32-bit ARM JIT lacks).
func (b *builder) addAt(m *ebpf.Map, keyOff int16, src asm.Register, skip string) {
	b.lookup(m, keyOff)
	b.emit(
		asm.JEq.Imm(asm.R0, 0, skip),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Reg(asm.R1, src),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
	)
	b.label(skip)
}

func (b *builder) ctxField(dst asm.Register, ctx asm.Register, f Field) {
	size := asm.Word
	if f.Size == 8 {
		size = asm.DWord
	}
	b.emit(asm.LoadMem(dst, ctx, int16(f.Offset), size))
}

func (b *builder) exit() asm.Instructions {
	b.label("exit")
	b.emit(asm.Mov.Imm(asm.R0, 0), asm.Return())
	return b.ins
}

// log2 sets dst = floor(log2(src)) (0 for 0 and 1) by an unrolled binary search,
// clobbering src and tmp.
func (b *builder) log2(dst, src, tmp asm.Register) {
	b.emit(asm.Mov.Imm(dst, 0))
	for _, sh := range []int32{32, 16, 8, 4, 2, 1} {
		l := fmt.Sprintf("log2_%d", sh)
		b.emit(
			asm.Mov.Reg(tmp, src),
			asm.RSh.Imm(tmp, sh),
			asm.JEq.Imm(tmp, 0, l),
			asm.Mov.Reg(src, tmp),
			asm.Add.Imm(dst, sh),
		)
		b.label(l)
	}
}

// schedFields are the sched_switch record fields the program reads.
type schedFields struct {
	prevPID, prevState, nextPID Field
}

// schedSwitchProg: sched_switch runs in the context of prev, so prev belongs to tgid
// when the current task does. For prev of tgid: learn its tid, stamp the switch-out of
// a tracked thread, and stamp "runnable since" when it was preempted (state 0 in the
// low report bits). For next: a stamped wait becomes a run-queue sample; a stamped
// switch-out becomes off-CPU time.
func schedSwitchProg(tgid int, f schedFields, threads, hist *ebpf.Map) (asm.Instructions, error) {
	var b builder
	b.emit(
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnKtimeGetNs.Call(),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.FnGetCurrentPidTgid.Call(),
		asm.RSh.Imm(asm.R0, 32),
		asm.JNE.Imm(asm.R0, int32(tgid), "next"),
	)
	b.ctxField(asm.R1, asm.R6, f.prevPID)
	b.emit(asm.StoreMem(asm.RFP, -4, asm.R1, asm.Word))
	b.lookup(threads, -4)
	b.emit(asm.JNE.Imm(asm.R0, 0, "have_prev"))
	// (cilium/ebpf's asm has no 64-bit store-immediate: store a zero register.)
	b.emit(asm.Mov.Imm(asm.R1, 0))
	for off := int16(-40); off < -8; off += 8 {
		b.emit(asm.StoreMem(asm.RFP, off, asm.R1, asm.DWord))
	}
	b.emit(asm.LoadMapPtr(asm.R1, threads.FD()))
	b.stackPtr(asm.R2, -4)
	b.stackPtr(asm.R3, -40)
	b.emit(asm.Mov.Imm(asm.R4, bpfNoExist), asm.FnMapUpdateElem.Call())
	b.lookup(threads, -4)
	b.emit(asm.JEq.Imm(asm.R0, 0, "next"))
	b.label("have_prev")
	b.emit(
		asm.LoadMem(asm.R1, asm.R0, offTracked, asm.DWord),
		asm.JEq.Imm(asm.R1, 0, "state"),
		asm.StoreMem(asm.R0, offOut, asm.R7, asm.DWord),
	)
	b.label("state")
	// prev_state is TASK_REPORT_MAX (a bit above 0xff) for a preempted task and 0 for a
	// running one that yielded; both are still runnable.
	b.ctxField(asm.R1, asm.R6, f.prevState)
	b.emit(
		asm.And.Imm(asm.R1, 0xff),
		asm.JNE.Imm(asm.R1, 0, "next"),
		asm.StoreMem(asm.R0, offWake, asm.R7, asm.DWord),
	)

	b.label("next")
	b.ctxField(asm.R1, asm.R6, f.nextPID)
	b.emit(asm.StoreMem(asm.RFP, -4, asm.R1, asm.Word))
	b.lookup(threads, -4)
	b.emit(
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Reg(asm.R8, asm.R0),
		asm.LoadMem(asm.R1, asm.R8, offWake, asm.DWord),
		asm.JEq.Imm(asm.R1, 0, "offcpu"),
		asm.Mov.Imm(asm.R2, 0),
		asm.StoreMem(asm.R8, offWake, asm.R2, asm.DWord),
		asm.Mov.Reg(asm.R9, asm.R7),
		asm.Sub.Reg(asm.R9, asm.R1), // r9 = wait ns
		asm.Mov.Reg(asm.R3, asm.R9),
	)
	b.log2(asm.R2, asm.R3, asm.R4)
	b.emit(asm.StoreMem(asm.RFP, -8, asm.R2, asm.Word))
	b.lookup(hist, -8)
	b.emit(
		asm.JEq.Imm(asm.R0, 0, "sum"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
	)
	b.label("sum")
	b.emit(asm.StoreImm(asm.RFP, -8, histSumKey, asm.Word))
	b.addAt(hist, -8, asm.R9, "offcpu")

	b.emit(
		asm.LoadMem(asm.R1, asm.R8, offTracked, asm.DWord),
		asm.JEq.Imm(asm.R1, 0, "exit"),
		asm.LoadMem(asm.R1, asm.R8, offOut, asm.DWord),
		asm.JEq.Imm(asm.R1, 0, "exit"),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Sub.Reg(asm.R2, asm.R1),
		asm.LoadMem(asm.R1, asm.R8, offOffCPU, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R2),
		asm.StoreMem(asm.R8, offOffCPU, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.R8, offOut, asm.R1, asm.DWord),
	)
	ins := b.exit()
	return ins, b.err
}

// schedWakeupProg stamps the wakeup time of a known thread of the process
// (sched_wakeup and sched_wakeup_new; pid is the woken task).
func schedWakeupProg(pid Field, threads *ebpf.Map) (asm.Instructions, error) {
	var b builder
	b.emit(asm.Mov.Reg(asm.R6, asm.R1))
	b.ctxField(asm.R1, asm.R6, pid)
	b.emit(asm.StoreMem(asm.RFP, -4, asm.R1, asm.Word))
	b.lookup(threads, -4)
	b.emit(
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.R7, offWake, asm.R0, asm.DWord),
	)
	ins := b.exit()
	return ins, b.err
}

// irqEntryProg counts irq_handler_entry events of the irqs present in counts
// (a per-CPU hash pre-filled with the wanted Linux irq numbers).
func irqEntryProg(irq Field, counts *ebpf.Map) (asm.Instructions, error) {
	var b builder
	b.ctxField(asm.R1, asm.R1, irq)
	b.emit(asm.StoreMem(asm.RFP, -4, asm.R1, asm.Word), asm.Mov.Imm(asm.R6, 1))
	b.addAt(counts, -4, asm.R6, "done")
	b.emit(asm.Ja.Label("exit"))
	ins := b.exit()
	return ins, b.err
}

// fpgaEntryProg stamps the start of a load per thread (key: pid_tgid).
func fpgaEntryProg(start *ebpf.Map) (asm.Instructions, error) {
	var b builder
	b.emit(
		asm.FnGetCurrentPidTgid.Call(),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.RFP, -16, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, start.FD()),
	)
	b.stackPtr(asm.R2, -8)
	b.stackPtr(asm.R3, -16)
	b.emit(asm.Mov.Imm(asm.R4, 0), asm.FnMapUpdateElem.Call())
	ins := b.exit()
	return ins, b.err
}

// fpgaReturnProg turns the stamp into a duration: count, sum, last, max. Loads are rare
// and serialized by the FPGA manager, so plain read-modify-write is enough.
func fpgaReturnProg(start, stats *ebpf.Map) (asm.Instructions, error) {
	var b builder
	b.emit(
		asm.FnGetCurrentPidTgid.Call(),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
	)
	b.lookup(start, -8)
	b.emit(
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.LoadMem(asm.R6, asm.R0, 0, asm.DWord),
		asm.LoadMapPtr(asm.R1, start.FD()),
	)
	b.stackPtr(asm.R2, -8)
	b.emit(
		asm.FnMapDeleteElem.Call(),
		asm.FnKtimeGetNs.Call(),
		asm.Sub.Reg(asm.R0, asm.R6),
		asm.Mov.Reg(asm.R6, asm.R0), // r6 = duration ns
		asm.StoreImm(asm.RFP, -12, 0, asm.Word),
	)
	b.lookup(stats, -12)
	b.emit(
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, 8, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R6),
		asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),
		asm.StoreMem(asm.R0, 16, asm.R6, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, 24, asm.DWord),
		asm.JGE.Reg(asm.R1, asm.R6, "exit"),
		asm.StoreMem(asm.R0, 24, asm.R6, asm.DWord),
	)
	ins := b.exit()
	return ins, b.err
}
