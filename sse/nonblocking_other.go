//go:build !unix

package sse

import "syscall"

// nonBlocking is empty where streams always write through their Writer.
type nonBlocking struct{}

func (s *stream) bind() {}

func rawConnOf(Writer) syscall.RawConn { return nil }

func (s *stream) tryWrite([]byte) (int, error) { panic("sse: tryWrite without a socket") }
