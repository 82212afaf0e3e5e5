// Package web owns the agent's HTTP API, the WebSocket feed hub and the embedded page.
package web
