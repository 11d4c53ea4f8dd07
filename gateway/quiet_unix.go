//go:build unix

package gateway

import (
	"net"
	"syscall"
)

// bytesWaiting reports whether c's socket holds unread bytes, without
// reading them or waiting (a peek). When it cannot tell, it says yes: the
// connection is then left open, the safe side.
func bytesWaiting(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	waiting := true
	var b [1]byte
	// Control, not Read: the server's own Read is usually blocked on this
	// socket, holding the read lock Read would wait for.
	err = rc.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing waiting. n == 0 with no error: the peer closed.
		waiting = n > 0 || (err != nil && err != syscall.EAGAIN && err != syscall.EWOULDBLOCK)
	})
	return err != nil || waiting
}
