package session

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/dlsse/dlsse/sse"
)

// fanOutSizes are the subscriber counts of the fan-out benchmarks.
var fanOutSizes = []int{1, 100, 1000}

// reportPerSub adds the per-event, per-subscriber cost to a fan-out
// benchmark's line: ns/event/sub and allocs/event/sub (from the
// allocations counted since ms0, publishing included).
func reportPerSub(b *testing.B, subs int, ms0 *runtime.MemStats) {
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	events := float64(b.N) * float64(subs)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event/sub")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/events, "allocs/event/sub")
}

// BenchmarkFanOut is "encode once, enqueue to N subscribers, write",
// without the goroutines: one op appends an already encoded activity to
// the log and wakes N subscribers, then each one in turn pulls it (as its
// stream loop does: the batch, then an empty ask) and writes it to
// io.Discard.
// wire=websocket is the same for Direct Line WebSocket subscribers (the
// activity framed in an ActivitySet).
func BenchmarkFanOut(b *testing.B) {
	for _, wire := range []Wire{WireSSE, WireWebSocket} {
		for _, subs := range fanOutSizes {
			b.Run(fmt.Sprintf("wire=%s/subs=%d", wire, subs), func(b *testing.B) { benchFanOut(b, wire, subs) })
		}
	}
}

func benchFanOut(b *testing.B, wire Wire, subs int) {
	f := newFanOutWire(b, subs, benchEvent(300), wire)
	ctx := context.Background()
	buf := make([]byte, 0, 4096)
	for range DefaultReplayBuffer + 1 { // the status event; the ring at full size
		f.publish()
		buf = f.pull(ctx, io.Discard, buf)
	}
	b.ReportAllocs()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for b.Loop() {
		f.publish()
		buf = f.pull(ctx, io.Discard, buf)
	}
	reportPerSub(b, subs, &ms0)
}

// BenchmarkFanOutStart is the same through the streams production runs:
// each subscriber has an sse.Start stream, which starts a goroutine when
// there is something to write and lets it go after. One op publishes an
// activity and waits until all N streams wrote it, so it includes the
// scheduler's work of starting N goroutines.
func BenchmarkFanOutStart(b *testing.B) {
	for _, subs := range fanOutSizes {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			f := newFanOut(b, subs, benchEvent(300))
			publish, stop := startFanOut(f)
			defer stop()
			for range DefaultReplayBuffer + 1 {
				publish()
			}
			b.ReportAllocs()
			var ms0 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			for b.Loop() {
				publish()
			}
			reportPerSub(b, subs, &ms0)
		})
	}
}

// BenchmarkFanOutSockets is the same over loopback TCP, each stream read
// by a client goroutine that parses its lines: the path production runs,
// write(2) included (which costs most of it). One op publishes an
// activity and waits until every client parsed it.
func BenchmarkFanOutSockets(b *testing.B) {
	for _, subs := range fanOutSizes {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			f := newSocketFanOut(b, subs, 300, sse.Options{Retry: time.Second, Heartbeat: time.Hour, WriteTimeout: 15 * time.Second}, true)
			for range 5 {
				f.publishAndWait(b)
			}
			b.ReportAllocs()
			var ms0 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			for b.Loop() {
				f.publishAndWait(b)
			}
			reportPerSub(b, subs, &ms0)
		})
	}
}

// BenchmarkActivityEvent is the once-per-activity part: encoding an
// activity with its cursor as the event id.
func BenchmarkActivityEvent(b *testing.B) {
	for _, size := range []int{300, 4 << 10} {
		d := decoded{meta: activityMeta{ID: "Fk2b1rHfCEX8PqEHH3dyCo-eu|0000042", Type: "message"}, json: benchActivity(size)}
		b.Run(fmt.Sprintf("bytes=%d", len(d.json)), func(b *testing.B) {
			b.SetBytes(int64(len(d.json)))
			b.ReportAllocs()
			for b.Loop() {
				_ = activityEvent(&d, "37")
			}
		})
	}
}
