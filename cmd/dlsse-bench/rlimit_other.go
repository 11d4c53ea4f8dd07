//go:build !unix

package main

// raiseFileLimit: no RLIMIT_NOFILE here; sizes are not capped.
func raiseFileLimit() uint64 { return 1 << 62 }
