//go:build !linux

package proc

import "syscall"

// childProcAttr: elsewhere nothing kills the children if the parent dies
// (the bench needs Linux's /proc to measure anyway).
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
