//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sse

import (
	"io"
	"syscall"
	"time"
	"unsafe"
)

// nonBlocking is a stream's state for tryWrite, in fields so that the
// function RawConn.Write calls is bound once (a closure per write would
// escape and allocate).
type nonBlocking struct {
	writeFn func(fd uintptr) bool
	wb      []byte
	wn      int
	werr    error
}

// bind makes s ready for tryWrite; call it once s has its final address.
// It lifts any write deadline the connection came with (an HTTP server's
// write timeout for the answer's head): once passed, it would fail every
// non-blocking write.
func (s *stream) bind() {
	if s.raw != nil {
		s.writeFn = s.writeFD
		if s.deadline != nil {
			_ = s.deadline.SetWriteDeadline(time.Time{})
		}
	}
}

// rawConnOf is w's socket, when w is a connection that has one. Such a w
// must be the socket itself (a net.Conn, or a wrapper whose Write is the
// socket's, as the gateway's): tryWrite writes around any other Write,
// and a descriptor in blocking mode would hold a thread in RawSyscall.
func rawConnOf(w Writer) syscall.RawConn {
	sc, ok := w.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// tryWrite writes as much of b as the socket takes now, without waiting.
// RawConn.Write holds the descriptor against a concurrent Close.
func (s *stream) tryWrite(b []byte) (int, error) {
	s.wb, s.wn, s.werr = b, 0, nil
	err := s.raw.Write(s.writeFn)
	n, werr := s.wn, s.werr
	s.wb, s.werr = nil, nil
	if err != nil {
		return n, err
	}
	return n, werr
}

// writeFD is tryWrite's step on the descriptor: it never asks RawConn to
// wait for the socket (it always returns true). The write is a raw system
// call: on a non-blocking socket it returns at once, so the scheduler need
// not be told (Syscall's bookkeeping, and the monitor thread it keeps
// awake, cost a tenth of a chat event's CPU).
func (s *stream) writeFD(fd uintptr) bool {
	for s.wn < len(s.wb) {
		p := s.wb[s.wn:]
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case errno == syscall.EINTR:
		case errno == syscall.EAGAIN:
			return true
		case errno != 0:
			s.werr = errno
			return true
		case int(n) <= 0:
			s.werr = io.ErrShortWrite
			return true
		default:
			s.wn += int(n)
		}
	}
	return true
}
