// Package overlay owns the programmable-logic side of the board: .hwh parsing, MMIO,
// PL clocks, AXI GPIO pins, the accelerator drivers, and the FPGA simulation.
package overlay
