package session

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dlsse/dlsse/internal/fixture"
	"github.com/dlsse/dlsse/sse"
)

// fanOut is a session with subscribers attached and no upstream: tests
// and benchmarks publish into its log themselves, as ingest does once it
// has encoded a set.
type fanOut struct {
	s     *Session
	subs  []*Subscriber
	ev    sse.Event
	batch []Entry // the one-entry set publish appends, reused
	n     uint64  // activities published
}

// newFanOut opens a session with n subscribers that joined "now" and
// publishes ev as every activity. No goroutine of the session runs.
func newFanOut(tb testing.TB, n int, ev sse.Event) *fanOut {
	return newFanOutWire(tb, n, ev, WireSSE)
}

// newFanOutWire is newFanOut with subscribers of the given wire.
func newFanOutWire(tb testing.TB, n int, ev sse.Event, wire Wire) *fanOut {
	return newFanOutConfig(tb, n, ev, wire, Config{})
}

// newFanOutConfig is newFanOutWire with the session's configuration.
func newFanOutConfig(tb testing.TB, n int, ev sse.Event, wire Wire, cfg Config) *fanOut {
	cfg.Logger = zerolog.Nop()
	m := NewManager(nil, cfg)
	tb.Cleanup(func() { _ = m.Close(context.Background()) })
	s := newSession(m, Request{ConversationID: "fanout", Credential: "fanout-token"}, Offer{}, false)
	f := &fanOut{s: s, ev: ev, batch: make([]Entry, 1)}
	for range n {
		sub := newSubscriber(s, nil, wire)
		s.mu.Lock()
		sub.acc = s.grantLocked("fanout-token") // what subscribe does once verified
		sub.idx = len(s.subs)
		s.subs = append(s.subs, sub)
		s.mu.Unlock()
		f.subs = append(f.subs, sub)
	}
	return f
}

// publish appends one durable activity to the log and wakes the
// subscribers. The event is already encoded: publishing copies nothing.
func (f *fanOut) publish() {
	f.n++
	f.batch[0] = Entry{Event: f.ev, Durable: true, Hash: f.n, Base: "37"}
	f.s.log.Append(f.batch, "")
	f.s.notify()
}

// pull does for every subscriber what its stream loop does after a
// wake-up: take the wake-up, ask for a batch and write it, ask again
// until the batch is empty. buf is the reused batch buffer; it returns
// it, grown if need be.
func (f *fanOut) pull(ctx context.Context, w io.Writer, buf []byte) []byte {
	for _, sub := range f.subs {
		select {
		case <-sub.Ready():
		default:
		}
		for {
			var end sse.Reason
			buf, end = sub.Next(ctx, buf[:0])
			if len(buf) == 0 || end != "" {
				break
			}
			_, _ = w.Write(buf)
		}
	}
	return buf
}

// benchActivity is the shared test activity of about size bytes.
func benchActivity(size int) []byte { return fixture.Activity(size) }

// benchEvent is a message activity of about size bytes, encoded as ingest
// encodes it (with its cursor as id).
func benchEvent(size int) sse.Event {
	d := decoded{meta: activityMeta{ID: "Fk2b1rHfCEX8PqEHH3dyCo-eu|0000042", Type: "message"}, json: benchActivity(size)}
	return activityEvent(&d, "37")
}

// countingWriter counts what it is given, so a test can check that every
// subscriber wrote every event.
type countingWriter struct{ events, bytes int }

func (w *countingWriter) Write(b []byte) (int, error) {
	w.events += strings.Count(string(b), "event: activity\n")
	w.bytes += len(b)
	return len(b), nil
}

// TestFanOutZeroAllocs pins the goal of the fan-out: once an activity is
// encoded, publishing it and every subscriber pulling and writing it
// allocate nothing, however many subscribers there are.
func TestFanOutZeroAllocs(t *testing.T) {
	for _, wire := range []Wire{WireSSE, WireWebSocket} {
		t.Run(wire.String(), func(t *testing.T) { testFanOutZeroAllocs(t, wire) })
	}
}

func testFanOutZeroAllocs(t *testing.T, wire Wire) {
	for _, n := range []int{1, 100} {
		f := newFanOutWire(t, n, benchEvent(300), wire)
		ctx := context.Background()
		buf := make([]byte, 0, 4096)
		// Warm up: the first batch carries the status event, and the log
		// grows its ring to the replay buffer's size.
		for range DefaultReplayBuffer + 1 {
			f.publish()
			buf = f.pull(ctx, io.Discard, buf)
		}
		allocs := testing.AllocsPerRun(100, func() {
			f.publish()
			buf = f.pull(ctx, io.Discard, buf)
		})
		if allocs != 0 {
			t.Errorf("%d subscribers: %v allocations per event, want 0", n, allocs)
		}
	}
}

// TestFanOutDeliversEachEventOnce checks the harness the benchmarks use:
// every subscriber writes every published event exactly once.
func TestFanOutDeliversEachEventOnce(t *testing.T) {
	const subs, events = 10, 3 * DefaultReplayBuffer
	ev := benchEvent(300)
	f := newFanOut(t, subs, ev)
	w := &countingWriter{}
	var buf []byte
	for range events {
		f.publish()
		buf = f.pull(context.Background(), w, buf)
	}
	if w.events != subs*events {
		t.Errorf("%d activity events written, want %d", w.events, subs*events)
	}
}

// startFanOut starts the stream the gateway runs (sse.Start) for every
// subscriber of f, with options like the gateway's (the heartbeat is
// longer, so that no ping is written mid-benchmark). publish hands one
// event to all of them and returns once each has written it; stop ends the
// streams and waits until each reported its end.
func startFanOut(f *fanOut) (publish func(), stop func()) {
	var written sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	var streams sync.WaitGroup
	written.Add(len(f.subs)) // the first batch: retry hint and status
	for _, sub := range f.subs {
		streams.Add(1)
		sse.Start(ctx, &signalWriter{written: &written}, sub, sse.Options{
			Retry: 3 * time.Second, Heartbeat: time.Hour, WriteTimeout: 15 * time.Second,
		}, func(sse.Reason) { streams.Done() })
	}
	written.Wait()
	publish = func() {
		written.Add(len(f.subs))
		f.publish()
		written.Wait()
	}
	stop = func() {
		cancel()
		streams.Wait()
	}
	return publish, stop
}

// signalWriter marks each write done on a WaitGroup. It has a write
// deadline and a flush, like the connections the gateway serves, so
// the stream's per-write paths run.
type signalWriter struct{ written *sync.WaitGroup }

func (w *signalWriter) Write(b []byte) (int, error) {
	w.written.Done()
	return len(b), nil
}

func (w *signalWriter) Flush() error { return nil }

func (w *signalWriter) SetWriteDeadline(time.Time) error { return nil }
