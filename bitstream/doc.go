// Package bitstream owns Xilinx bitstreams: the .bit header, .bit to .bin conversion, and
// programming through the Linux FPGA manager (sysfs and configfs overlays).
//
// A .bit file is a small header (design name, part, date, time) followed by the
// configuration data (field "e"). Parse and ReadHeader decode the header and check every
// length against the file; ToBin streams the payload out with each 32-bit word
// byte-swapped, the form the Zynq FPGA manager driver expects in /lib/firmware. Manager
// loads such a .bin through the Xilinx sysfs interface (fpga_manager/fpga0/firmware) or,
// on mainline kernels, through a configfs device-tree overlay whose blob this package
// encodes itself (fdt.go). All system paths are Manager fields so tests run the whole
// flow against temporary trees.
package bitstream
