// Package agent owns the board daemon: its TOML config, lifecycle, frame sources, the
// detection pipeline, health, metrics and status LEDs.
//
// Start-up ([New]) programs the bitstream (the Linux FPGA manager on the board, the
// simulated manager of overlay/sim with -sim), maps the QNN engine through
// overlay/qnndriver over the board's /dev/mem and DMA allocator or the simulated bus and
// DDR, preloads the weights and loads the CPU layers. [Agent.Serve] then runs the
// [Pipeline]: a source goroutine (files, MJPEG over HTTP, V4L2) feeding a drop-oldest
// queue, a CPU stage (decode, letterbox, first layer), the engine stage and a CPU stage
// (last layer, region decode, NMS) connected by blocking hand-offs, so the CPU prepares
// the next frame while the engine works on this one. Every frame goes to a [Publisher]
// (the web hub). [Agent] implements web.Backend; [Run] is the whole daemon with its
// HTTP server, systemd notifications and graceful drain.
//
// [Agent.Verify] (POST /api/verify) runs one validation image through the same stages
// as a frame, between live frames ([FeedDuringVerify]: the feed keeps running), and
// reports the packed engine input/output digests, the detections and, on request, each
// engine layer's digest and one layer's dump, for `pynqctl verify`. Kernel telemetry
// (agent/telemetry: run-queue latency, the pipeline threads' off-CPU time, the
// bitstream load timed in the kernel, the design's interrupts) is loaded when root and
// bpf allow, and skipped with one log line otherwise.
package agent
