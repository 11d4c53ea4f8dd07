package gateway_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/upstream"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// TestShutdownClosesSilentConnections: a connection that never sent a byte
// (a browser's preconnect, an HTTP client's spare dial) does not hold
// Shutdown up until the read timeout; one in the middle of a request still
// gets its answer.
func TestShutdownClosesSilentConnections(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	addr := strings.TrimPrefix(h.URL, "http://")
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// A live connection too: its request is served before the end.
	live, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, err := live.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 12)
	if _, err := io.ReadFull(live, buf); err != nil || string(buf) != "HTTP/1.1 200" {
		t.Fatalf("live request: %q %v", buf, err)
	}
	// The server has seen the silent one (it is accepted as soon as the
	// dial returns, in the kernel's backlog at worst): give Shutdown a
	// deadline far below the 30 s read timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.gw.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (a silent connection held it)", err)
	}
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Error("the silent connection is still open")
	}
}

// lateListener hands out connections whose first Read waits until the
// listener is closed: a server too busy to read a request already in the
// socket before Shutdown begins.
type lateListener struct {
	net.Listener
	accepted chan struct{}
	closed   chan struct{}
	once     sync.Once
}

func (l *lateListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lateConn{Conn: c, closed: l.closed, accepted: l.accepted}, nil
}

func (l *lateListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

type lateConn struct {
	net.Conn
	closed   <-chan struct{}
	accepted chan<- struct{}
	read     bool
}

// Read says the connection was accepted at the server's first read, not in
// Accept: by then the gateway has the connection (signalled from Accept,
// Shutdown could begin while the gateway's own Accept still held it, and
// close it as accepted too late).
func (c *lateConn) Read(p []byte) (int, error) {
	if !c.read {
		c.read = true
		select {
		case c.accepted <- struct{}{}:
		default:
		}
		<-c.closed
	}
	return c.Conn.Read(p)
}

// SyscallConn lets Shutdown peek at the socket, as with a plain TCP
// connection.
func (c *lateConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

// TestShutdownServesARequestSentButNotRead: a request fully in the socket
// when Shutdown begins, but not read yet, is served, not dropped with the
// silent connections.
func TestShutdownServesARequestSentButNotRead(t *testing.T) {
	fake := directlinetest.NewServer()
	defer fake.Close()
	up, err := upstream.New(upstream.Config{BaseURL: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	mgr := session.NewManager(up, session.Config{})
	gw, err := gateway.New(gateway.Config{}, up, mgr)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &lateListener{Listener: inner, accepted: make(chan struct{}, 1), closed: make(chan struct{})}
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ln) }()

	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	<-ln.accepted
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-served
	_ = mgr.Close(ctx)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 12)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "HTTP/1.1 200" {
		t.Fatalf("a request sent before Shutdown got no answer: %q %v", buf, err)
	}
}
