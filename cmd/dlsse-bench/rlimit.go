//go:build unix

package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// raiseFileLimit lifts RLIMIT_NOFILE as far as it can, before any child
// starts: children inherit it, and at C sessions dlsse holds 2×C sockets
// (one per client, one upstream per conversation). It tries the kernel's
// ceiling (fs.nr_open), which needs CAP_SYS_RESOURCE, then falls back to
// the hard limit. It returns the soft limit in force afterwards.
//
// Setting the limit explicitly also matters for another reason: Go raises
// its own soft limit at start-up but restores the original for the
// processes it starts, unless the program called Setrlimit itself.
func raiseFileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if ceiling, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && ceiling > lim.Max {
			want := syscall.Rlimit{Cur: ceiling, Max: ceiling}
			if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
				return ceiling
			}
		}
	}
	lim.Cur = lim.Max
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return lim.Cur
}
