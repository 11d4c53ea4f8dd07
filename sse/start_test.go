package sse

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// notifyFeed is a Feed whose publisher wakes the stream through the Waker
// Start hands it, as session.Subscriber does.
type notifyFeed struct {
	mu      sync.Mutex
	pending []byte
	end     Reason
	waker   Waker
	now     bool // publish calls WriteNow, not Wake
}

func (f *notifyFeed) Ready() <-chan struct{} { return nil }

func (f *notifyFeed) SetWaker(w Waker) {
	f.mu.Lock()
	f.waker = w
	f.mu.Unlock()
}

func (f *notifyFeed) Prompt() bool { return true }

func (f *notifyFeed) Next(_ context.Context, dst []byte) ([]byte, Reason) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dst = append(dst, f.pending...)
	f.pending = f.pending[:0]
	return dst, f.end
}

// publish adds bytes (and maybe an end) and wakes the stream.
func (f *notifyFeed) publish(b string, end Reason) {
	f.mu.Lock()
	f.pending = append(f.pending, b...)
	f.end = end
	w, now := f.waker, f.now
	f.mu.Unlock()
	switch {
	case w == nil:
	case now:
		w.WriteNow()
	default:
		w.Wake()
	}
}

// recordingWriter keeps what was written; fail makes writes fail.
type recordingWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	fail error
	full chan struct{} // closed once want bytes were written (when set)
	want int
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return 0, w.fail
	}
	n, err := w.buf.Write(b)
	if w.full != nil && w.buf.Len() >= w.want {
		close(w.full)
		w.full = nil
	}
	return n, err
}

func (w *recordingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestStartHoldsNoGoroutineWhenIdle: a started stream writes the retry
// hint and what the feed publishes, pings after a silent heartbeat, and
// between those has no goroutine at all; shutdown writes the shutdown
// bytes and reports ReasonShutdown once.
func TestStartHoldsNoGoroutineWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		feed := &notifyFeed{}
		w := &recordingWriter{}
		ended := make(chan Reason, 2)
		s := start(ctx, w, feed, Options{
			Retry:      3 * time.Second,
			Heartbeat:  15 * time.Second,
			OnShutdown: func(dst []byte) []byte { return AppendRetry(dst, 7*time.Second) },
		}, func(r Reason) { ended <- r })

		synctest.Wait() // the first run wrote the retry hint and went idle
		if got := w.String(); got != "retry: 3000\n\n" {
			t.Fatalf("first write %q", got)
		}
		// Idle: the stream's goroutine has exited (a parked one would
		// hold the turn, blocked somewhere).
		if !s.turn.Idle() {
			t.Fatal("the turn is held while the stream is idle")
		}

		feed.publish("data: one\n\n", "")
		synctest.Wait()
		if got := w.String(); !strings.HasSuffix(got, "data: one\n\n") {
			t.Fatalf("after publish %q", got)
		}

		time.Sleep(14 * time.Second) // fake time: just short of a heartbeat
		synctest.Wait()
		if strings.Contains(w.String(), ": ping") {
			t.Fatal("pinged before a silent heartbeat")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := w.String(); !strings.HasSuffix(got, ": ping\n\n") {
			t.Fatalf("no ping after a silent heartbeat: %q", got)
		}
		// Every silent heartbeat pings; an event moves the next ping to
		// a heartbeat after it.
		time.Sleep(15 * time.Second)
		synctest.Wait()
		if got := strings.Count(w.String(), ": ping"); got != 2 {
			t.Fatalf("%d pings after two silent heartbeats: %q", got, w.String())
		}
		time.Sleep(5 * time.Second)
		feed.publish("data: two\n\n", "")
		time.Sleep(14 * time.Second)
		synctest.Wait()
		if got := strings.Count(w.String(), ": ping"); got != 2 {
			t.Fatalf("pinged within a heartbeat of an event: %q", w.String())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := strings.Count(w.String(), ": ping"); got != 3 {
			t.Fatalf("no ping a heartbeat after the event: %q", w.String())
		}

		cancel()
		synctest.Wait()
		if r := <-ended; r != ReasonShutdown {
			t.Fatalf("ended with %q", r)
		}
		if got := w.String(); !strings.HasSuffix(got, "retry: 7000\n\n") {
			t.Fatalf("no shutdown hint: %q", got)
		}
		feed.publish("data: late\n\n", "") // the notify was removed
		synctest.Wait()
		if len(ended) != 0 || strings.Contains(w.String(), "late") {
			t.Fatal("the stream ran after it ended")
		}
	})
}

// TestStartEnds: the feed ending the stream, and a failing client, each
// end it once with their reason, and publishing afterwards does nothing.
func TestStartEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		feed := &notifyFeed{}
		w := &recordingWriter{}
		ended := make(chan Reason, 2)
		Start(context.Background(), w, feed, Options{}, func(r Reason) { ended <- r })
		synctest.Wait()
		feed.publish("event: status\ndata: {}\n\n", ReasonEnded)
		synctest.Wait()
		if r := <-ended; r != ReasonEnded || !strings.HasSuffix(w.String(), "data: {}\n\n") {
			t.Fatalf("ended %q after %q", r, w.String())
		}

		feed2 := &notifyFeed{}
		w2 := &recordingWriter{}
		Start(context.Background(), w2, feed2, Options{}, func(r Reason) { ended <- r })
		synctest.Wait()
		w2.mu.Lock()
		w2.fail = errors.New("connection reset")
		w2.mu.Unlock()
		feed2.publish("data: x\n\n", "")
		synctest.Wait()
		if r := <-ended; r != ReasonClientGone {
			t.Fatalf("ended %q, want client_gone", r)
		}
		feed2.publish("data: y\n\n", "")
		synctest.Wait()
		if len(ended) != 0 {
			t.Fatal("ended twice")
		}
	})
}

// TestStartPublishWhileWriting: a publish that lands while the stream's
// goroutine is writing is not lost (the goroutine looks again before it
// goes idle), across many rounds on real goroutines.
func TestStartPublishWhileWriting(t *testing.T) {
	const n = 2000
	feed := &notifyFeed{}
	full := make(chan struct{})
	w := &recordingWriter{full: full, want: n}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan Reason, 1)
	Start(ctx, w, feed, Options{}, func(r Reason) { ended <- r })
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/4; i++ {
				feed.publish("x", "")
			}
		}()
	}
	wg.Wait()
	select {
	case <-full:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d of %d bytes written", len(w.String()), n)
	}
	cancel()
	if r := <-ended; r != ReasonShutdown {
		t.Fatalf("ended %q", r)
	}
}

// notifyingCountingFeed is countingFeed for Start: publish wakes the
// stream (or has it written at once, with now) instead of signalling
// Ready.
type notifyingCountingFeed struct {
	*countingFeed
	waker atomic.Pointer[Waker]
	now   bool
}

func (f *notifyingCountingFeed) SetWaker(w Waker) {
	if w == nil {
		f.waker.Store(nil)
		return
	}
	f.waker.Store(&w)
}

func (f *notifyingCountingFeed) Prompt() bool { return true }

func (f *notifyingCountingFeed) publish() {
	f.published.Add(1)
	if w := f.waker.Load(); w != nil {
		if f.now {
			(*w).WriteNow()
		} else {
			(*w).Wake()
		}
	}
}

// TestStartZeroAllocsPerEvent: a started stream woken for each event (the
// usual case: a chat idles between messages, so every event starts the
// stream's goroutine again) allocates nothing per event: no closure for
// the goroutine, no timer, no buffer beyond the pool's.
func TestStartZeroAllocsPerEvent(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	misses := countPoolMisses(t)
	feed := &notifyingCountingFeed{countingFeed: newCountingFeed(NewEvent(benchCursor, "activity", benchActivity(300)))}
	w := &signalWriter{written: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan Reason, 1)
	Start(ctx, w, feed, Options{Retry: time.Second, Heartbeat: time.Hour, WriteTimeout: time.Minute},
		func(r Reason) { ended <- r })
	<-w.written // the retry hint
	publish := func() {
		feed.publish()
		<-w.written
	}
	for range 10 {
		publish()
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	const runs = 1000
	// The path allocates nothing; starting a goroutine now and then makes
	// the scheduler allocate a descriptor (1 in ~1,000 wake-ups seen). A
	// per-event allocation would show as >= runs.
	if got := mallocsDuring(t, misses, runs, publish); got > runs/100 {
		t.Errorf("Start allocated %d times in %d events (pool misses not counted), want ~0", got, runs)
	}
	cancel()
	if r := <-ended; r != ReasonShutdown {
		t.Fatalf("ended %q", r)
	}
}

// fakeInbound records Start's use of an Inbound: Read answers with the
// next of replies.
type fakeInbound struct {
	mu       sync.Mutex
	readable func()
	stopped  bool
	reads    int
	replies  []inboundReply
}

type inboundReply struct {
	out string
	end Reason
}

func (in *fakeInbound) Watch(readable func()) (func(), error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.readable = readable
	return func() {
		in.mu.Lock()
		in.stopped = true
		in.mu.Unlock()
	}, nil
}

func (in *fakeInbound) Read(dst []byte) ([]byte, Reason) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.reads++
	r := in.replies[0]
	in.replies = in.replies[1:]
	return append(dst, r.out...), r.end
}

func (in *fakeInbound) tell() {
	in.mu.Lock()
	f := in.readable
	in.mu.Unlock()
	f()
}

// TestStartInbound: what the client sends is read on the stream's own
// goroutine when the watch says so, never otherwise; Read's answer is
// written; its Reason ends the stream, and the watch is stopped before
// done. The heartbeat writes Options.Ping when set.
func TestStartInbound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in := &fakeInbound{replies: []inboundReply{{out: "PONG"}, {out: "BYE", end: ReasonClientGone}}}
		feed := &notifyFeed{}
		w := &recordingWriter{}
		ended := make(chan Reason, 2)
		Start(context.Background(), w, feed, Options{Heartbeat: time.Second, Ping: []byte("PING"), Inbound: in},
			func(r Reason) {
				in.mu.Lock()
				if !in.stopped {
					t.Error("done before the watch was stopped")
				}
				in.mu.Unlock()
				ended <- r
			})
		synctest.Wait()
		feed.publish("data: a\n\n", "")
		synctest.Wait()
		if in.reads != 0 {
			t.Fatal("read without being told the client sent something")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		in.tell()
		synctest.Wait()
		if got := w.String(); got != "data: a\n\nPINGPONG" {
			t.Fatalf("wrote %q", got)
		}
		in.tell()
		synctest.Wait()
		if r := <-ended; r != ReasonClientGone || !strings.HasSuffix(w.String(), "BYE") {
			t.Fatalf("ended %q after %q", r, w.String())
		}
	})
}

// TestWriteNowHandsOffWhatWouldBlock: a publisher writing a real socket
// itself (WriteNow) never waits for the client: what the socket cannot
// take at once goes on on the stream's goroutine, in order, and a client
// that reads late but reads gets every byte and is not dropped.
func TestWriteNowHandsOffWhatWouldBlock(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	feed := &notifyFeed{now: true}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan Reason, 1)
	Start(ctx, server, feed, Options{WriteTimeout: 30 * time.Second}, func(r Reason) { ended <- r })

	// 16 MiB in 64 KiB pieces, far more than loopback's socket buffers:
	// with nobody reading, every publish must still return at once.
	var want bytes.Buffer
	piece := make([]byte, 64<<10)
	for i := range 256 {
		for j := range piece {
			piece[j] = byte('a' + (i+j)%26)
		}
		want.Write(piece)
		done := make(chan struct{})
		go func() { feed.publish(string(piece), ""); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("publish %d waited for the client", i)
		}
	}
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatalf("read %v", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("the bytes arrived changed or out of order")
	}
	select {
	case r := <-ended:
		t.Fatalf("a reading client's stream ended: %q", r)
	default:
	}
	cancel()
	if r := <-ended; r != ReasonShutdown {
		t.Fatalf("ended %q", r)
	}
}

// TestHeartbeatAfterEndStaysStopped: a heartbeat callback already running
// when the stream ended (Stop does not wait for it) leaves the timer
// stopped, not re-armed for ever, holding the stream (found by review).
func TestHeartbeatAfterEndStaysStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		ended := make(chan Reason, 1)
		s := start(ctx, &recordingWriter{}, &notifyFeed{}, Options{Heartbeat: 15 * time.Second}, func(r Reason) { ended <- r })
		synctest.Wait()
		cancel()
		<-ended
		s.heartbeat() // the callback that had begun when end stopped the timer
		if s.timer.Stop() {
			t.Fatal("the heartbeat timer was re-armed after the stream ended")
		}
	})
}
