package gateway

import (
	"net"
	"sync"
	"sync/atomic"
)

// quietListener remembers the connections that have not sent a byte yet,
// so Shutdown can close them. fasthttp counts a connection as active from
// the moment it waits for its first request, and its Shutdown waits for
// active connections, up to the read timeout. Such connections are common:
// browsers preconnect, and HTTP clients keep spare connections they dialled
// for a request that another connection served. Closing one loses nothing.
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

// shutdown stops accepting and closes every connection that never sent a
// byte.
func (l *quietListener) shutdown() {
	l.Close()
	l.mu.Lock()
	l.shut = true
	quiet := l.quiet
	l.quiet = nil
	l.mu.Unlock()
	for c := range quiet {
		c.Conn.Close()
	}
}

func (l *quietListener) heard(c *quietConn) {
	l.mu.Lock()
	delete(l.quiet, c)
	l.mu.Unlock()
}

// quietConn tells its listener when its first byte arrives or it closes.
type quietConn struct {
	net.Conn
	l     *quietListener
	heard atomic.Bool
}

func (c *quietConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.heard.Load() && c.heard.CompareAndSwap(false, true) {
		c.l.heard(c)
	}
	return n, err
}

func (c *quietConn) Close() error {
	if c.heard.CompareAndSwap(false, true) {
		c.l.heard(c)
	}
	return c.Conn.Close()
}
