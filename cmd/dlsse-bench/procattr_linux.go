package main

import "syscall"

// childProcAttr: a bench killed before it could clean up takes its
// children along.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
