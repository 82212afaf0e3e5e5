package agent

import "golang.org/x/sys/unix"

// gettid is the calling OS thread's id (for off-CPU accounting).
func gettid() int { return unix.Gettid() }
