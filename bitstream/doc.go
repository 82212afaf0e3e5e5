// Package bitstream owns Xilinx bitstreams: the .bit header, .bit to .bin conversion, and
// programming through the Linux FPGA manager (sysfs and configfs overlays).
package bitstream
