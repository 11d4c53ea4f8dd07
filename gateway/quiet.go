package gateway

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// quietListener remembers the connections that have not sent a byte yet,
// so Shutdown can close them. fasthttp counts a connection as active from
// the moment it waits for its first request, and its Shutdown waits for
// active connections, up to the read timeout. Such connections are common:
// browsers preconnect, and HTTP clients keep spare connections they dialled
// for a request that another connection served. Closing one that has no
// bytes waiting loses nothing (a request sent at that very instant meets a
// closed connection, as it would when any server closes an idle one).
type quietListener struct {
	net.Listener
	closeOnce sync.Once
	closeErr  error

	mu    sync.Mutex
	quiet map[*quietConn]struct{}
	shut  bool // closed: every connection accepted from now on is closed at once
}

func newQuietListener(ln net.Listener) *quietListener {
	return &quietListener{Listener: ln, quiet: make(map[*quietConn]struct{})}
}

func (l *quietListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	qc := &quietConn{Conn: c, l: l}
	l.mu.Lock()
	shut := l.shut
	if !shut {
		l.quiet[qc] = struct{}{}
	}
	l.mu.Unlock()
	if shut {
		c.Close() // accepted in the race with Close: nobody will serve it
	}
	return qc, nil
}

// Close closes the listener once; later calls (fasthttp's own, at
// Shutdown) report nothing.
func (l *quietListener) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.Listener.Close() })
	return nil
}

// shutdown stops accepting and closes every connection that has not sent
// a byte and has none waiting: one whose request is in the socket but not
// read yet is left to be served.
func (l *quietListener) shutdown() {
	l.Close()
	l.mu.Lock()
	l.shut = true
	quiet := l.quiet
	l.quiet = nil
	l.mu.Unlock()
	for c := range quiet {
		if !bytesWaiting(c.Conn) && c.state.CompareAndSwap(connQuiet, connShut) {
			c.Conn.Close()
		}
	}
}

func (l *quietListener) heard(c *quietConn) {
	l.mu.Lock()
	delete(l.quiet, c)
	l.mu.Unlock()
}

// The states of a quietConn. Read and shutdown race on one CAS from
// connQuiet, so a connection whose first bytes were read is never closed
// by shutdown, and one shutdown closed never serves a request.
const (
	connQuiet int32 = iota // nothing read yet
	connHeard              // bytes read, or closed by its owner
	connShut               // closed by shutdown
)

// quietConn tells its listener when its first byte arrives or it closes.
type quietConn struct {
	net.Conn
	l     *quietListener
	state atomic.Int32
}

func (c *quietConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.state.Load() != connHeard {
		if !c.state.CompareAndSwap(connQuiet, connHeard) {
			// shutdown closed it between the read and here: the bytes
			// must not become a request nobody can be told about.
			return 0, net.ErrClosed
		}
		c.l.heard(c)
	}
	return n, err
}

func (c *quietConn) Close() error {
	if c.state.CompareAndSwap(connQuiet, connHeard) {
		c.l.heard(c)
	}
	return c.Conn.Close()
}

// SyscallConn exposes the connection's descriptor, for the watcher that
// hears from stream clients (inbound.go).
func (c *quietConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// CloseWrite ends the sending side, when the socket can (closeAfterPeer).
func (c *quietConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
