package sse

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkStart is BenchmarkServe for the streams the gateway runs: each
// op hands one event to an idle started stream, which starts a goroutine,
// writes it (with deadline and flush) and lets the goroutine go.
func BenchmarkStart(b *testing.B) {
	for _, size := range benchSizes {
		ev := NewEvent(benchCursor, "activity", benchActivity(size))
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			publish, stop := startLoop(ev)
			defer stop()
			b.SetBytes(int64(len(ev)))
			b.ReportAllocs()
			for b.Loop() {
				publish()
			}
		})
	}
}

// startLoop is serveLoop with Start: publish returns once the event was
// written, stop once the stream reported its end.
func startLoop(ev Event) (publish func(), stop func()) {
	feed := &notifyingCountingFeed{countingFeed: newCountingFeed(ev)}
	w := &signalWriter{written: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan Reason, 1)
	Start(ctx, w, feed, Options{Retry: time.Second, Heartbeat: time.Hour, WriteTimeout: time.Minute},
		func(r Reason) { ended <- r })
	<-w.written // the retry hint
	publish = func() {
		feed.publish()
		<-w.written
	}
	stop = func() {
		cancel()
		<-ended
	}
	return publish, stop
}
