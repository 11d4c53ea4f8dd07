package main

import (
	"context"
	"math/rand/v2"
	"time"
)

// redial is where a benchmark subscriber connects: one address, or with
// several replicas each in turn after a disconnect (what a round-robin
// load balancer does with a browser's reconnects).
type redial struct {
	addr  string   // where the next attempt goes
	addrs []string // with several replicas: every address, in turn
	next  int
}

// moveOn points the next attempt at the next address.
func (r *redial) moveOn() {
	if len(r.addrs) > 1 {
		r.next = (r.next + 1) % len(r.addrs)
		r.addr = r.addrs[r.next]
	}
}

// keepStreaming runs stream again and again until ctx ends, as a browser
// does: after each end it counts a disconnect, moves to the next address
// and waits pause() plus up to 0.5 s of jitter (so the bench's own
// clients do not come back in lockstep). connected is called once, after
// the first attempt got its answer's head (or failed), so a fleet can
// bound the connections being set up at once.
func keepStreaming(ctx context.Context, rec *recorder, r *redial, connected func(error),
	stream func(ctx context.Context, headDone func(error)) error, pause func() time.Duration) {
	first := true
	for {
		err := stream(ctx, func(err error) {
			if first {
				first = false
				connected(err)
			}
		})
		if first { // failed before the head
			first = false
			connected(err)
		}
		if ctx.Err() != nil {
			return
		}
		rec.online.Store(false)
		rec.disconnects.Add(1)
		r.moveOn()
		t := time.NewTimer(pause() + rand.N(500*time.Millisecond))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}
