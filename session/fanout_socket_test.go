package session

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dlsse/dlsse/sse"
)

// socketFanOut is a fanOut whose subscribers are streamed as the gateway
// streams them (sse.Start on a loopback TCP connection), each read by a
// client that counts the activity events it parsed.
type socketFanOut struct {
	*fanOut
	clients []*countingClient
	cancel  context.CancelFunc
	streams sync.WaitGroup // the sse.Start streams, until done
	readers sync.WaitGroup // the clients' goroutines
	reasons chan sse.Reason
	timeout *time.Timer // publishAndWait's, reused: a timer per wait would be the benchmark's allocations
}

// countingClient counts activity events on its connection and says when
// it reached want.
type countingClient struct {
	conn    net.Conn
	events  atomic.Int64
	want    atomic.Int64
	reached chan struct{} // one value each time events reaches want
}

func newSocketFanOut(t testing.TB, n, size int, opt sse.Options, read bool) *socketFanOut {
	return newSocketFanOutConfig(t, n, size, opt, read, Config{})
}

// newSocketFanOutConfig is newSocketFanOut with the session's configuration.
func newSocketFanOutConfig(t testing.TB, n, size int, opt sse.Options, read bool, cfg Config) *socketFanOut {
	f := &socketFanOut{fanOut: newFanOutConfig(t, n, benchEvent(size), WireSSE, cfg), reasons: make(chan sse.Reason, n), timeout: time.NewTimer(time.Hour)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var ctx context.Context
	ctx, f.cancel = context.WithCancel(context.Background())
	for _, sub := range f.subs {
		cc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c := &countingClient{conn: cc, reached: make(chan struct{}, 1)}
		f.clients = append(f.clients, c)
		if read {
			f.readers.Go(c.read)
		}
		f.streams.Add(1)
		sse.Start(ctx, sc, sub, opt, func(r sse.Reason) {
			sub.Close()
			sc.Close()
			f.reasons <- r
			f.streams.Done()
		})
	}
	t.Cleanup(f.stop)
	return f
}

// read counts "event: activity" lines until the connection ends.
func (c *countingClient) read() {
	br := bufio.NewReaderSize(c.conn, 4096)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // a long data line, in pieces
		}
		if err != nil {
			return
		}
		if bytes.Equal(line, []byte("event: activity\n")) {
			if c.events.Add(1) == c.want.Load() {
				c.reached <- struct{}{}
			}
		}
	}
}

// publishAndWait publishes one activity and waits until every reading
// client parsed it.
func (f *socketFanOut) publishAndWait(t testing.TB) {
	for _, c := range f.clients {
		c.want.Store(int64(f.n) + 1)
	}
	f.publish()
	f.timeout.Reset(10 * time.Second)
	defer f.timeout.Stop()
	for i, c := range f.clients {
		select {
		case <-c.reached:
		case <-f.timeout.C:
			t.Fatalf("client %d has %d events of %d", i, c.events.Load(), f.n)
		}
	}
}

func (f *socketFanOut) stop() {
	f.cancel()
	f.streams.Wait()
	for _, c := range f.clients {
		c.conn.Close()
	}
	f.readers.Wait()
}

// goroutinesCreated is the runtime's count of goroutines started so far.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestFanOutWritesIdleStreamsInline: an activity reaches every idle
// stream of real sockets exactly once, written by the publisher itself
// (one subscriber) or by fan-out passes on a goroutine per CPU (many),
// not by a goroutine per subscriber per event, as streams woken one by
// one would be.
func TestFanOutWritesIdleStreamsInline(t *testing.T) {
	for _, tc := range []struct {
		subs, maxPerEvent int
	}{
		{1, 0},
		{256, runtime.GOMAXPROCS(0)},
	} {
		f := newSocketFanOut(t, tc.subs, 300, sse.Options{Retry: time.Second, Heartbeat: time.Hour, WriteTimeout: 10 * time.Second}, true)
		for range 5 { // the first writes, on the streams' own goroutines
			f.publishAndWait(t)
		}
		const events = 50
		before := goroutinesCreated()
		for range events {
			f.publishAndWait(t)
		}
		created := goroutinesCreated() - before
		// The runtime starts one now and then of its own (a GC worker,
		// a timer's): a tenth of one an event is slack enough.
		if limit := uint64(events*tc.maxPerEvent + events/10); created > limit {
			t.Errorf("%d subscribers: %d goroutines started for %d events, want at most %d", tc.subs, created, events, limit)
		}
		for i, c := range f.clients {
			if got := c.events.Load(); got != int64(f.n) {
				t.Errorf("%d subscribers: client %d parsed %d activities of %d", tc.subs, i, got, f.n)
			}
		}
	}
}

// TestFanOutSlowSocketHoldsUpNobody: a client that stops reading has its
// stream's writes handed to the stream's own goroutine, which drops it as
// slow after the write timeout; the other clients get every activity
// meanwhile, and the publisher never waits for it.
func TestFanOutSlowSocketHoldsUpNobody(t *testing.T) {
	const subs = 80
	f := newSocketFanOut(t, subs, 16<<10, sse.Options{Heartbeat: time.Hour, WriteTimeout: 500 * time.Millisecond}, false)
	for _, c := range f.clients[1:] {
		f.readers.Go(c.read)
	}
	readers := f.clients[1:]
	// Until the silent client's socket buffers are full and its write has
	// waited out the timeout, each activity reaching the readers first.
	for {
		for _, c := range readers {
			c.want.Store(int64(f.n) + 1)
		}
		f.publish()
		for i, c := range readers {
			select {
			case <-c.reached:
			case <-time.After(10 * time.Second):
				t.Fatalf("client %d has %d events of %d", i+1, c.events.Load(), f.n)
			}
		}
		select {
		case r := <-f.reasons:
			if r != sse.ReasonSlow {
				t.Fatalf("a stream ended with %q, want slow", r)
			}
			t.Logf("dropped as slow after %d activities", f.n)
			return
		default:
		}
		if f.n > 100_000 {
			t.Fatal("the silent client was never dropped")
		}
	}
}

// TestFanOutBurstLongerThanTheLog: a publisher appending as fast as it can
// a burst many times the replay log's size is held back by the fan-out
// passes, not by any client: every subscriber gets every activity from
// the log, none falls behind it (with no Direct Line to catch up from,
// one that did would end its stream).
func TestFanOutBurstLongerThanTheLog(t *testing.T) {
	const subs, replay, burst = 100, 64, 2000
	f := newSocketFanOutConfig(t, subs, 300, sse.Options{Heartbeat: time.Hour, WriteTimeout: 30 * time.Second}, true,
		Config{ReplayBuffer: replay})
	for _, c := range f.clients {
		c.want.Store(burst)
	}
	for range burst {
		f.publish()
	}
	timeout := time.After(30 * time.Second)
	for i, c := range f.clients {
		select {
		case <-c.reached:
		case r := <-f.reasons:
			t.Fatalf("a stream ended (%q): it fell behind the log", r)
		case <-timeout:
			t.Fatalf("client %d has %d activities of %d", i, c.events.Load(), burst)
		}
	}
}
