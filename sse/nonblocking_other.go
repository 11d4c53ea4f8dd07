//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package sse

import "syscall"

// nonBlocking is empty where streams always write through their Writer
// (no raw write(2) to call: Windows, and the Unixes without SYS_WRITE).
type nonBlocking struct{}

func (s *stream) bind() {}

func rawConnOf(Writer) syscall.RawConn { return nil }

func (s *stream) tryWrite([]byte) (int, error) { panic("sse: tryWrite without a socket") }
