package qnndriver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fpgadetector/pynq-agent/dma"
	"github.com/fpgadetector/pynq-agent/overlay"
	"github.com/fpgadetector/pynq-agent/quant/offload"
)

// ap_ctrl bits of an HLS block with ap_ctrl_hs.
const (
	ctrlStart = 1 << 0
	ctrlDone  = 1 << 1 // clears when read
	ctrlIdle  = 1 << 2
)

// regOrder lists the engine's registers by their .hwh names, in address order, and
// defaultOffsets places them as the published W1A3 overlay does (offload.Registers).
var regOrder, defaultOffsets = func() ([]string, regOffsets) {
	off := regOffsets{}
	var names []string
	for _, r := range offload.Registers {
		names = append(names, r.Name)
		off[r.Name] = r.Offset
	}
	return names, off
}()

// regOffsets maps register names (64-bit pointers by their argument name) to offsets.
type regOffsets map[string]uint32

// registerOffsets reads the engine's register offsets from the .hwh. A module without
// a register list gets the published offsets; a list missing one of the engine's
// arguments is another IP version and refused.
func registerOffsets(m *overlay.Module) (regOffsets, error) {
	hasRegs := false
	for _, b := range m.AddressBlocks {
		hasRegs = hasRegs || len(b.Registers) > 0
	}
	if !hasRegs {
		return defaultOffsets, nil
	}
	off := regOffsets{}
	for _, name := range regOrder {
		// HLS names a 64-bit pointer's words <arg>_V_1 / <arg>_V_2 (older) or <arg>_1 / <arg>_2.
		for _, cand := range []string{name, name + "_V_1", name + "_1"} {
			if r, ok := m.Register(cand); ok {
				off[name] = r.Offset
				break
			}
		}
		if _, ok := off[name]; !ok {
			return nil, fmt.Errorf("no register %q: not the QNN-MO BlackBoxJam this driver knows", name)
		}
	}
	return off, nil
}

func (d *Driver) write(name string, v uint32) {
	d.shadow[name] = v
	d.regs.Write32(d.off[name], v)
}

func (d *Driver) write64(name string, v uint64) {
	d.shadow[name] = uint32(v) // the dump shows the low word; DDR sits below 4 GiB on Zynq-7000
	d.regs.Write32(d.off[name], uint32(v))
	d.regs.Write32(d.off[name]+4, uint32(v>>32))
}

// Run computes the hidden layers: in holds the first engine layer's input records
// (InLayout; other record sizes are repacked as QNN-MO's padTo does), the result is the
// last layer's output records (OutLayout).
func (d *Driver) Run(ctx context.Context, in []byte) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.run(ctx, in, nil)
}

// LayerOutput is one hidden layer's output in a traced run: after its fused pool, the
// parts of a split layer concatenated, in the DDR layout (padding bits as the engine
// left them).
type LayerOutput struct {
	Name   string // the model layer's name
	Layout offload.Layout
	Data   []byte
}

// RunTrace is [Driver.Run] that also copies every layer's output out of DDR as it
// finishes, for locating the layer where the engine departs from the host reference
// (qnnmo.Engine.RunTrace). The last entry's Data is Run's result.
func (d *Driver) RunTrace(ctx context.Context, in []byte) ([]LayerOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var outs []LayerOutput
	_, err := d.run(ctx, in, func(first int, buf dma.Buffer) error {
		r := d.runs[first]
		l := offload.DDRLayout(int(r.OFMCh)*r.Parts, r.OutDim)
		if err := dma.SyncRangeForCPU(buf, 0, l.Size()); err != nil {
			return err
		}
		outs = append(outs, LayerOutput{Name: d.names[first], Layout: l, Data: append([]byte(nil), buf.Bytes()[:l.Size()]...)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return outs, nil
}

// run is Run; trace, when set, sees each layer's output buffer (first: the layer's
// first run) before the next layer overwrites its input.
func (d *Driver) run(ctx context.Context, in []byte, trace func(first int, buf dma.Buffer) error) ([]byte, error) {
	if d.closed {
		return nil, errors.New("qnn driver: closed")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if d.broken != nil {
		if err := d.recover(ctx); err != nil {
			return nil, err
		}
	}
	src := in
	if len(in) != d.inL.Size() {
		from, err := offload.LayoutForSize(d.inL.Channels, d.inL.Dim, len(in))
		if err != nil {
			return nil, fmt.Errorf("qnn driver: input: %w", err)
		}
		if src, err = offload.Repack(in, from, d.inL); err != nil {
			return nil, fmt.Errorf("qnn driver: input: %w", err)
		}
	}
	cur := 0
	copy(d.act[cur].Bytes(), src)
	if err := dma.SyncRangeForDevice(d.act[cur], 0, d.inL.Size()); err != nil {
		return nil, err
	}
	for i := 0; i < len(d.runs); {
		r := d.runs[i]
		next := d.act[1-cur]
		if r.Parts == 1 {
			if err := d.layer(ctx, i, d.act[cur], next); err != nil {
				return nil, err
			}
		} else if err := d.splitLayer(ctx, i, d.act[cur], next); err != nil {
			return nil, err
		}
		cur = 1 - cur
		if trace != nil {
			if err := trace(i, d.act[cur]); err != nil {
				return nil, err
			}
		}
		i += r.Parts
	}
	if err := dma.SyncRangeForCPU(d.act[cur], 0, d.outL.Size()); err != nil {
		return nil, err
	}
	return append([]byte(nil), d.act[cur].Bytes()[:d.outL.Size()]...), nil
}

// splitLayer runs the parts of a layer with more than MaxOFMCh outputs into the split
// buffers and concatenates their channels into out on the CPU (QNN-MO's concatBuffer).
func (d *Driver) splitLayer(ctx context.Context, first int, in, out dma.Buffer) error {
	r := d.runs[first]
	for p := 0; p < r.Parts; p++ {
		if err := d.layer(ctx, first+p, in, d.split[p]); err != nil {
			return err
		}
	}
	l := offload.DDRLayout(int(r.OFMCh)*r.Parts, r.OutDim)
	dst := out.Bytes()[:l.Size()]
	clear(dst)
	part := offload.DDRLayout(int(r.OFMCh), r.OutDim).Size()
	for p := 0; p < r.Parts; p++ {
		if err := dma.SyncRangeForCPU(d.split[p], 0, part); err != nil {
			return err
		}
		if err := offload.Concat(dst, d.split[p].Bytes(), l, p, int(r.OFMCh)); err != nil {
			return fmt.Errorf("qnn driver: layer %s: %w", d.names[first], err)
		}
	}
	return dma.SyncRangeForDevice(out, 0, l.Size())
}

// layer loads run i's weights and computes it from in to out.
func (d *Driver) layer(ctx context.Context, i int, in, out dma.Buffer) error {
	r := d.runs[i]
	var w [2]dma.Buffer
	if d.cfg.Preload {
		w = d.weights[i]
	} else {
		var err error
		if w, err = d.weightBuffers(r); err != nil {
			return err
		}
		defer closeAll(w[:])
	}
	d.write64("in1", w[0].PhysAddr())
	d.write64("in2", w[1].PhysAddr())
	for _, rw := range r.WeightLoadRegs() {
		d.write(rw.Name, rw.Value)
	}
	if err := d.startAndWait(ctx, i, true); err != nil {
		return err
	}
	// No dirty line may land on the engine's output: hand over the bytes it writes (only
	// those: cache maintenance costs in proportion, and late layers are a few KB).
	if err := dma.SyncRangeForDevice(out, 0, offload.DDRLayout(int(r.OFMCh), r.OutDim).Size()); err != nil {
		return err
	}
	d.write64("in1", in.PhysAddr())
	d.write64("out", out.PhysAddr())
	for _, rw := range r.ComputeRegs() {
		d.write(rw.Name, rw.Value)
	}
	return d.startAndWait(ctx, i, false)
}

// maxPollPause bounds the back-off between ap_done polls: a layer ends at most this
// late (a register read costs well under a microsecond; a frame has some 20 runs).
const maxPollPause = 100 * time.Microsecond

// startAndWait starts the engine and polls ap_done until it rises, the run times out or
// ctx ends; the latter two leave the driver needing a reset.
func (d *Driver) startAndWait(ctx context.Context, i int, doInit bool) error {
	if v := d.regs.Read32(d.off["CTRL"]); v&ctrlIdle == 0 {
		d.broken = fmt.Errorf("engine busy (ap_ctrl 0x%X) before layer %s", v, d.names[i])
		return fmt.Errorf("qnn driver: %w (reset pending)", d.broken)
	}
	var irq <-chan struct{} // a device interrupt ends a pause early (see overlay.Interrupter)
	if it, ok := d.regs.(overlay.Interrupter); ok {
		irq = it.Interrupt()
	}
	d.write("CTRL", ctrlStart)
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	pause := 2 * time.Microsecond
	timer := time.NewTimer(pause)
	defer timer.Stop()
	for {
		v := d.regs.Read32(d.off["CTRL"])
		if v&ctrlDone != 0 {
			d.lastWait = time.Since(start)
			return nil
		}
		select {
		case <-wctx.Done():
			herr := &HangError{Layer: d.names[i], Run: d.runs[i], DoInit: doInit, Waited: time.Since(start),
				Ctrl: v, Regs: clone(d.shadow), Cause: wctx.Err()}
			d.broken = herr
			if ctx.Err() != nil { // the caller gave up, not the engine
				return fmt.Errorf("qnn driver: layer %s interrupted (engine reset before the next run): %w", d.names[i], ctx.Err())
			}
			return herr
		case <-timer.C:
		case <-irq:
			irq = d.regs.(overlay.Interrupter).Interrupt()
		}
		pause = min(2*pause, maxPollPause)
		timer.Reset(pause)
	}
}

func clone(m map[string]uint32) map[string]uint32 {
	c := make(map[string]uint32, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// recover resets the engine after a hang and checks it is idle again. Weights are
// loaded before every layer anyway, so the next run starts from a clean engine.
func (d *Driver) recover(ctx context.Context) error {
	reset := d.cfg.Reset
	if reset == nil {
		reset = d.pulsePLReset
	}
	if err := reset(ctx); err != nil {
		return fmt.Errorf("qnn driver: reset after %v: %w (reprogram the bitstream)", d.broken, err)
	}
	if v := d.regs.Read32(d.off["CTRL"]); v&ctrlIdle == 0 {
		return fmt.Errorf("qnn driver: engine still busy after reset (ap_ctrl 0x%X): reprogram the bitstream", v)
	}
	d.log.Warn("qnn engine reset after a failed run", "cause", d.broken)
	d.broken = nil
	d.resets++
	return nil
}

// pulsePLReset asserts and releases FCLK_RESET0 through the SLCR.
func (d *Driver) pulsePLReset(ctx context.Context) error {
	r, err := d.cfg.Bus.Map(overlay.SLCRBase, 0x1000)
	if err != nil {
		return fmt.Errorf("map SLCR for the PL reset (the bus must include overlay.SLCRRange): %w", err)
	}
	defer r.Close()
	r.Write32(slcrUnlock, slcrUnlockKey)
	v := r.Read32(slcrFPGAResetCtrl)
	r.Write32(slcrFPGAResetCtrl, v|1)
	time.Sleep(time.Microsecond) // proc_sys_reset stretches the pulse; any width works
	r.Write32(slcrFPGAResetCtrl, v&^1)
	return ctx.Err()
}

// Resets counts the engine resets after failed runs.
func (d *Driver) Resets() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.resets
}

// LastWait is how long the last engine run took to signal done (for diagnostics).
func (d *Driver) LastWait() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastWait
}
