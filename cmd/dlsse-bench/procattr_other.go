//go:build !linux

package main

import "syscall"

// childProcAttr: elsewhere nothing kills the children if the bench dies
// (the bench needs Linux's /proc to measure anyway).
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
