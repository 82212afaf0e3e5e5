// Package darknetref owns the reference harness that runs Debian's libdarknet (the
// original pjreddie float implementation) through cgo, to check the project's decode,
// letterbox, float engine and box decoding against it and to benchmark it.
//
// Everything except this comment needs the build tag `darknet` and cgo, with Debian's
// darknet package installed (apt-get install darknet):
//
//	go test -tags darknet ./quant/darknetref/
//	go test -tags darknet -run '^$' -bench . ./quant/darknetref/
//
// libdarknet exits the process on some errors (a missing cfg, a cfg it cannot parse),
// so the wrapper checks what it can before calling it. It is a test tool, never linked
// into the agent.
package darknetref
