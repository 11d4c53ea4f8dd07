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
	r, err := NewNowReader(c)
	if err != nil {
		return 0, err
	}
	return r.Read(p)
}

// NowReader is ReadNow for a connection read again and again: made once,
// it reads without allocating.
type NowReader struct {
	rc   syscall.RawConn
	read func(fd uintptr) // bound once: a closure per read would allocate
	p    []byte
	n    int
	err  error
}

// NewNowReader returns a NowReader of c.
func NewNowReader(c syscall.Conn) (*NowReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &NowReader{rc: rc}
	r.read = r.readFD
	return r, nil
}

func (r *NowReader) readFD(fd uintptr) { r.n, r.err = readFD(fd, r.p) }

// Read reads as ReadNow does. One goroutine at a time.
func (r *NowReader) Read(p []byte) (n int, err error) {
	r.p = p
	cerr := r.rc.Control(r.read)
	n, rerr := r.n, r.err
	r.p, r.err = nil, nil
	switch {
	case cerr != nil:
		return 0, cerr
	case rerr == nil && n == 0 && len(p) > 0:
		return 0, io.EOF
	case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EINTR):
		return 0, nil
	case rerr != nil:
		return 0, rerr
	}
	return n, nil
}
