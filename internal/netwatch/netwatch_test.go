package netwatch_test

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dlsse/dlsse/internal/netwatch"
)

// watchers are the implementations under the shared suite.
func watchers(t *testing.T) map[string]func() netwatch.Watcher {
	m := map[string]func() netwatch.Watcher{
		"perconn": func() netwatch.Watcher { return netwatch.NewPerConn() },
	}
	if runtime.GOOS == "linux" {
		m["epoll"] = func() netwatch.Watcher {
			w, err := netwatch.NewEpoll()
			if err != nil {
				t.Fatal(err)
			}
			return w
		}
	}
	return m
}

func TestWatchers(t *testing.T) {
	defer goleak.VerifyNone(t)
	for name, make := range watchers(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("data", func(t *testing.T) { testData(t, make()) })
			t.Run("hangup", func(t *testing.T) { testHangup(t, make()) })
			t.Run("stop", func(t *testing.T) { testStop(t, make()) })
			t.Run("many", func(t *testing.T) { testMany(t, make()) })
			t.Run("closed", func(t *testing.T) { testClosed(t, make()) })
		})
	}
}

// pair returns a connected TCP pair: the server side (watched) and the
// client side.
func pair(t *testing.T) (server *net.TCPConn, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); client.Close() })
	return s.(*net.TCPConn), client
}

// signal counts readable calls and lets a test wait for the next.
type signal struct {
	n atomic.Int64
	c chan struct{}
}

func newSignal() *signal { return &signal{c: make(chan struct{}, 1024)} }

func (s *signal) readable() {
	s.n.Add(1)
	select {
	case s.c <- struct{}{}:
	default:
	}
}

func (s *signal) wait(t *testing.T) {
	t.Helper()
	select {
	case <-s.c:
	case <-time.After(10 * time.Second):
		t.Fatal("no readable call within 10 s")
	}
}

// drain reads what there is now, as an owner does after each call.
func drain(t *testing.T, c syscall.Conn) (got []byte, eof bool) {
	t.Helper()
	buf := make([]byte, 64)
	for {
		n, err := netwatch.ReadNow(c, buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return got, true
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return got, false
		}
	}
}

// readUntil drains after every call until it has want bytes.
func readUntil(t *testing.T, s *signal, c syscall.Conn, want string) {
	t.Helper()
	var got []byte
	for string(got) != want {
		s.wait(t)
		b, eof := drain(t, c)
		got = append(got, b...)
		if eof {
			t.Fatalf("EOF after %q, want %q", got, want)
		}
	}
}

func testData(t *testing.T, w netwatch.Watcher) {
	defer w.Close()
	srv, cli := pair(t)
	s := newSignal()
	stop, err := w.Watch(srv, s.readable)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if b, eof := drain(t, srv); len(b) != 0 || eof {
		t.Fatalf("before anything was sent: %q, eof %v", b, eof)
	}
	cli.Write([]byte("hello"))
	readUntil(t, s, srv, "hello")
	// Drained: the next arrival is a new edge, and is told.
	cli.Write([]byte("again"))
	readUntil(t, s, srv, "again")
}

func testHangup(t *testing.T, w netwatch.Watcher) {
	defer w.Close()
	srv, cli := pair(t)
	s := newSignal()
	stop, err := w.Watch(srv, s.readable)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	cli.Write([]byte("bye"))
	cli.Close()
	var got []byte
	for {
		s.wait(t)
		b, eof := drain(t, srv)
		got = append(got, b...)
		if eof {
			break
		}
	}
	if string(got) != "bye" {
		t.Fatalf("got %q before EOF, want %q", got, "bye")
	}
}

func testStop(t *testing.T, w netwatch.Watcher) {
	srv, cli := pair(t)
	s := newSignal()
	stop, err := w.Watch(srv, s.readable)
	if err != nil {
		t.Fatal(err)
	}
	cli.Write([]byte("x"))
	readUntil(t, s, srv, "x")
	stop()
	stop() // idempotent
	before := s.n.Load()
	cli.Write([]byte("y"))
	cli.Close()
	// Close waits for the watcher's goroutines: whatever it would have
	// called, it has called by then.
	w.Close()
	if n := s.n.Load(); n != before {
		t.Fatalf("%d calls after stop", n-before)
	}
	if b, eof := drain(t, srv); string(b) != "y" || !eof {
		t.Fatalf("the data after stop was not left for the owner: %q, eof %v", b, eof)
	}
}

func testMany(t *testing.T, w netwatch.Watcher) {
	defer w.Close()
	const n = 200
	srvs := make([]*net.TCPConn, n)
	clis := make([]net.Conn, n)
	sigs := make([]*signal, n)
	for i := range n {
		srvs[i], clis[i] = pair(t)
		sigs[i] = newSignal()
		stop, err := w.Watch(srvs[i], sigs[i].readable)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
	}
	for i := range n {
		clis[i].Write([]byte{byte(i)})
	}
	for i := range n {
		readUntil(t, sigs[i], srvs[i], string([]byte{byte(i)}))
	}
}

func testClosed(t *testing.T, w netwatch.Watcher) {
	srv, _ := pair(t)
	w.Close()
	if _, err := w.Watch(srv, func() {}); !errors.Is(err, netwatch.ErrClosed) {
		t.Fatalf("Watch after Close: %v, want ErrClosed", err)
	}
	w.Close() // idempotent
}

func TestReadNowClosedConn(t *testing.T) {
	srv, _ := pair(t)
	srv.Close()
	if _, err := netwatch.ReadNow(srv, make([]byte, 8)); err == nil {
		t.Fatal("ReadNow on a closed connection: no error")
	}
}
