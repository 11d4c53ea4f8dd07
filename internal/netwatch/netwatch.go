// Package netwatch tells a connection's owner when the peer sent something
// or hung up, without a goroutine per connection: on Linux one epoll set,
// read by one goroutine, watches every registered descriptor. Streams use
// it to notice a departed client at once, and to read what a WebSocket
// client sends, while holding no goroutine of their own when idle.
//
// Notifications are edge-triggered: after one, the owner reads until
// ReadNow reports nothing more, or it may not be told again.
package netwatch

import (
	"errors"
	"io"
	"syscall"
)

// A Watcher calls a function whenever a watched connection becomes
// readable: data arrived, or the peer closed or reset it.
type Watcher interface {
	// Watch calls readable (from the watcher's goroutine: it must not
	// block, nor call stop) each time c becomes readable, until stop is
	// called. stop is idempotent; a call already under way when it
	// returns may still happen, so readable must tolerate a late call.
	Watch(c syscall.Conn, readable func()) (stop func(), err error)
	// Close stops watching everything and waits for the watcher's
	// goroutines.
	Close() error
}

// ErrClosed is returned by Watch once the watcher is closed.
var ErrClosed = errors.New("netwatch: watcher closed")

// ReadNow reads what c has now into p, without waiting: n is 0 with a nil
// error when there is nothing to read, and err is io.EOF once the peer
// closed its side. It bypasses the runtime's poller (no read lock, no
// deadline), so it may run while another goroutine waits on c.
func ReadNow(c syscall.Conn, p []byte) (n int, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var rerr error
	if cerr := rc.Control(func(fd uintptr) { n, rerr = readFD(fd, p) }); cerr != nil {
		return 0, cerr
	}
	switch {
	case rerr == nil && n == 0 && len(p) > 0:
		return 0, io.EOF
	case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EINTR):
		return 0, nil
	case rerr != nil:
		return 0, rerr
	}
	return n, nil
}
