package proc

import "syscall"

// childProcAttr: a parent killed before it could clean up takes its
// children along.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
