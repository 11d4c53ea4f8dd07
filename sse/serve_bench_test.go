package sse

import (
	"fmt"
	"testing"
)

// BenchmarkServe is one Serve loop's cost per event: wake-up, taking the
// batch from the feed, the write (with deadline and flush) and going back
// to sleep. Each op hands one event to the loop and waits until it is
// written, so it includes two goroutine switches. The gateway runs Start
// instead: see BenchmarkStart.
func BenchmarkServe(b *testing.B) {
	for _, size := range benchSizes {
		ev := NewEvent(benchCursor, "activity", benchActivity(size))
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			publish, stop := serveLoop(ev)
			defer stop()
			b.SetBytes(int64(len(ev)))
			b.ReportAllocs()
			for b.Loop() {
				publish()
			}
		})
	}
}
