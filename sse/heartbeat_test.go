package sse

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestHeartbeatsWheel: streams sharing a wheel are pinged after a
// heartbeat of quiet (at most a tick late), an event moves a stream's
// next ping a heartbeat after it; streams started with the wheel's context
// watch it through the wheel (no watch each), which shuts them all down
// when it ends; and once every stream ended the wheel's timer is stopped
// and it holds none of them.
func TestHeartbeatsWheel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const every = 15 * time.Second // a tick of 1 s
		ctx, cancel := context.WithCancel(context.Background())
		h := NewHeartbeats(ctx, every)
		const n = 50
		feeds := make([]*notifyFeed, n)
		ws := make([]*recordingWriter, n)
		ended := make(chan Reason, n)
		for i := range n {
			feeds[i], ws[i] = &notifyFeed{}, &recordingWriter{}
			if s := start(ctx, ws[i], feeds[i], Options{Heartbeat: every, Heartbeats: h}, func(r Reason) { ended <- r }); s.stopCtx != nil {
				t.Fatal("a stream started with the wheel's context watches it itself")
			}
		}
		pings := func(i int) int { return strings.Count(ws[i].String(), ": ping") }
		time.Sleep(5 * time.Second)
		feeds[0].publish("data: news\n\n", "") // 5 s in: its ping moves to 20 s
		time.Sleep(9*time.Second + 500*time.Millisecond)
		synctest.Wait()
		for i := range n {
			if pings(i) != 0 {
				t.Fatalf("stream %d pinged within a heartbeat: %q", i, ws[i].String())
			}
		}
		time.Sleep(time.Second + 500*time.Millisecond) // 16 s: a tick after 15
		synctest.Wait()
		for i := 1; i < n; i++ {
			if pings(i) != 1 {
				t.Fatalf("stream %d: %d pings after a heartbeat and a tick of quiet", i, pings(i))
			}
		}
		if pings(0) != 0 {
			t.Fatal("the stream with news pinged a heartbeat after its start, not after the news")
		}
		time.Sleep(5 * time.Second) // 21 s
		synctest.Wait()
		if pings(0) != 1 {
			t.Fatalf("the stream with news: %d pings a heartbeat and a tick after it", pings(0))
		}
		cancel()
		synctest.Wait() // at once: no tick may pass
		if len(ended) != n {
			t.Fatalf("%d of %d streams shut down when their context ended", len(ended), n)
		}
		for range n {
			if r := <-ended; r != ReasonShutdown {
				t.Fatalf("ended %q", r)
			}
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.n != 0 || len(h.slots) != 0 || h.timer.Stop() {
			t.Fatalf("after every stream ended: %d streams, %d slots, timer running", h.n, len(h.slots))
		}
	})
}
