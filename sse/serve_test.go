package sse

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// countingFeed hands out one shared event per publish, as a session log
// does: the producer publishes, the stream loop copies.
type countingFeed struct {
	ev        Event
	published atomic.Uint64
	taken     uint64 // stream loop only
	ready     chan struct{}
}

func newCountingFeed(ev Event) *countingFeed {
	return &countingFeed{ev: ev, ready: make(chan struct{}, 1)}
}

// publish makes one more event available and wakes the loop, never
// blocking (like Session.notify).
func (f *countingFeed) publish() {
	f.published.Add(1)
	select {
	case f.ready <- struct{}{}:
	default:
	}
}

func (f *countingFeed) Ready() <-chan struct{} { return f.ready }

func (f *countingFeed) Next(_ context.Context, dst []byte) ([]byte, Reason) {
	for n := f.published.Load(); f.taken < n; f.taken++ {
		dst = append(dst, f.ev...)
	}
	return dst, ""
}

// signalWriter takes every write and tells the producer it happened.
// SetWriteDeadline and Flush are there so Serve's per-write paths run.
type signalWriter struct {
	bytes   int
	written chan struct{}
}

func (w *signalWriter) Write(b []byte) (int, error) {
	w.bytes += len(b)
	w.written <- struct{}{}
	return len(b), nil
}

func (w *signalWriter) Flush() error { return nil }

func (w *signalWriter) SetWriteDeadline(time.Time) error { return nil }

// serveLoop runs Serve over a counting feed and a signalling writer, with
// the options the gateway sets (retry hint, write timeout, and a heartbeat
// long enough never to fire here). It returns
// a function that publishes one event and waits until Serve has written it,
// and a function that stops the loop and waits for it.
func serveLoop(ev Event) (publish func(), stop func()) {
	feed := newCountingFeed(ev)
	w := &signalWriter{written: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		Serve(ctx, w, feed, Options{Retry: time.Second, Heartbeat: time.Hour, WriteTimeout: time.Minute})
	}()
	<-w.written // the retry hint
	publish = func() {
		feed.publish()
		<-w.written
	}
	stop = func() {
		cancel()
		wg.Wait()
	}
	return publish, stop
}

// countPoolMisses makes bufPool count the buffers it has to make, until
// the test ends. The race detector makes sync.Pool drop a random share of
// what is put back, so under -race a miss is not a leak of the loop.
func countPoolMisses(t *testing.T) *atomic.Int64 {
	var misses atomic.Int64
	old := bufPool.New
	bufPool.New = func() any {
		misses.Add(1)
		return old()
	}
	t.Cleanup(func() { bufPool.New = old })
	return &misses
}

// allocsPerPoolMiss is what bufPool.New allocates: the buffer and the
// pointer that holds it.
const allocsPerPoolMiss = 2

// mallocsDuring runs fn runs times and returns the allocations made
// meanwhile, less those that bufPool's misses account for. The misses are
// bounded too: a loop that never gave its buffers back would miss at
// every batch, and its allocations would hide among the subtracted ones.
func mallocsDuring(t *testing.T, misses *atomic.Int64, runs int, fn func()) int64 {
	t.Helper()
	before := misses.Load()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for range runs {
		fn()
	}
	runtime.ReadMemStats(&ms1)
	missed := misses.Load() - before
	// A run takes a buffer or two (its batch; the answer to what the
	// client sent); the race detector's pool drops a quarter of them.
	allowed := int64(runs / 100)
	if raceEnabled {
		allowed = int64(runs)
	}
	if missed > allowed {
		t.Errorf("the buffer pool missed %d times in %d runs (at most %d expected): buffers are not given back", missed, runs, allowed)
	}
	return int64(ms1.Mallocs-ms0.Mallocs) - allocsPerPoolMiss*missed
}

// TestServeZeroAllocsPerEvent pins the stream loop's part of "encode once,
// then 0 allocations per event per subscriber": taking a batch from the
// feed, writing it with a deadline, flushing, resetting the heartbeat,
// and sleeping until the next wake-up allocate nothing. It counts by hand
// rather than with testing.AllocsPerRun so that pool misses can be told
// apart from the loop's own allocations.
func TestServeZeroAllocsPerEvent(t *testing.T) {
	// One P, as testing.AllocsPerRun does: the runtime's own per-P
	// caches (sudogs for the channel handoffs) then never refill.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	misses := countPoolMisses(t)
	publish, stop := serveLoop(NewEvent(benchCursor, "activity", benchActivity(300)))
	defer stop()
	for range 10 { // warm up: the pool, the context's channel
		publish()
	}
	// No collection while counting: a GC empties the pool, and pinning it
	// again allocates (the race detector's pool misses make garbage).
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	const runs = 1000
	if got := mallocsDuring(t, misses, runs, publish); got != 0 {
		t.Errorf("Serve allocated %d times in %d events (pool misses not counted), want 0", got, runs)
	}
}

// TestServeHeartbeatZeroAllocs: an idle stream's heartbeat allocates
// nothing (tens of thousands of idle streams each ping every 15 s). The
// bubble's fake clock fires the heartbeats at once.
func TestServeHeartbeatZeroAllocs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	synctest.Test(t, func(t *testing.T) {
		defer debug.SetGCPercent(debug.SetGCPercent(-1))
		misses := countPoolMisses(t)
		feed := newCountingFeed(nil)
		w := &signalWriter{written: make(chan struct{}, 1)}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			Serve(ctx, w, feed, Options{Heartbeat: 15 * time.Second})
		}()
		for range 10 {
			<-w.written
		}
		const runs = 100
		if got := mallocsDuring(t, misses, runs, func() { <-w.written }); got != 0 {
			t.Errorf("%d heartbeats allocated %d times, want 0", runs, got)
		}
		cancel()
		<-done
	})
}
