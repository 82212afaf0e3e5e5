// Package dma owns physically contiguous buffers (XRT zocl, u-dma-buf, simulated) and
// their cache synchronisation.
//
// Buffers come from an Allocator; every buffer has a CPU view (Bytes), the physical
// address a device is told (PhysAddr), and cache maintenance in both directions:
// SyncForDevice after the CPU wrote and before a device reads (clean), SyncForCPU after a
// device wrote and before the CPU reads (invalidate). Three allocators implement the seam:
//
//   - ZoclAllocator: GEM buffer objects of the XRT zocl DRM driver on the render node
//     (/dev/dri/renderD128 on PYNQ >= 2.7 images), allocated from CMA.
//   - UdmabufAllocator: buffers carved out of one u-dma-buf region (/dev/udmabufN and its
//     sysfs attributes).
//   - SimAllocator: buffers carved out of a SimMemory, the simulated DDR, so a simulated
//     IP reading physical address p sees exactly the bytes the driver wrote there.
//
// Package dma/axidma drives a Xilinx AXI DMA IP over these buffers; package dma/simdma
// models that IP for the FPGA simulation.
package dma
