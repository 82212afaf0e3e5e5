// Package dma owns physically contiguous buffers (XRT zocl, u-dma-buf, simulated), their
// cache synchronisation, and the Xilinx AXI DMA driver.
package dma
