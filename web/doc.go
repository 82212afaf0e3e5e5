// Package web owns the agent's HTTP API, the WebSocket feed hub and the embedded page.
//
// The daemon implements [Backend] and hands every processed frame to a [Hub] with
// Publish, which never blocks: the hub's goroutine encodes a frame once (JPEG and JSON)
// when anyone watches, and queues the same bytes to each viewer, dropping a slow viewer's
// oldest frame rather than waiting. [NewServer] serves /healthz, /readyz, /api/status,
// /metrics, /api/snapshot.jpg, /api/detections, /api/control, /api/verify (a backend
// that is a [Verifier]: `pynqctl verify` posts validation images with the bearer token
// and gets engine digests and detections back; see verify.go), the feed at /ws and the
// page at /. The feed protocol is described in ws.go.
package web
