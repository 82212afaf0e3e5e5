// Package qnn owns the Tinier-YOLO W1A3 model of Xilinx's QNN-MO-PYNQ on the host side:
// import of a QNN-MO parameter directory into the model IR ([LoadDir]), its parameter
// files ([WriteBinparams]; {L}-{PE}-weights.bin and {L}-{PE}-thres.bin hold the engine's
// per-PE words, offload.PEParams), a host reference of the offload engine ([Engine]) that
// computes the hidden layers bit-exactly as the hardware does, and the float first and
// last layers that run on the CPU ([FirstLayer], [LastLayer]). What the engine itself
// takes and does (records, runs, registers, limits, weight buffers, the Accelerator
// interface) is package offload's, which the board's driver and the simulation use
// without this package.
package qnnmo
