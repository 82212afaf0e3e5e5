// Package overlay owns the programmable-logic side of the board: .hwh parsing, MMIO,
// PL clocks, AXI GPIO pins, the accelerator drivers, and the FPGA simulation.
//
// The pieces and how they fit:
//
//   - ParseHWH / LoadHWH read a Vivado hardware handoff file into a Design: its modules
//     (instance, VLNV, type, parameters, registers, ports), the address map the CPU
//     sees (the PS module's MEMORYMAP), the PS7 fabric clocks and the interrupt lines
//     traced from the PS IRQ_F2P input through xlconcat and axi_intc cells.
//   - Bus and Region are the seam between drivers and hardware: Map(phys, size) gives a
//     window of 32-bit registers. DevMem implements it on the board over /dev/mem
//     (periph.io pmem); MemRegion and MemBus are in-memory register files for tests and
//     the base of simulated devices. CheckedBus wraps any Bus so that a driver can only
//     map what the loaded design declares.
//   - Clocks reads and sets FCLK0..3 through the SLCR and applies a design's settings.
//   - AXIGPIO exposes AXI GPIO channels as periph.io gpio.PinIO pins.
//
// Drivers take a Bus (and the Design when they need addresses or parameters), never a
// concrete implementation, so the same code runs on the board and in simulation.
package overlay
