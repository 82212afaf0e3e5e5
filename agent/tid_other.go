//go:build !linux

package agent

// gettid is 0 where thread ids are not Linux's: no thread is tracked.
func gettid() int { return 0 }
