package upstream

import (
	"sync"
	"time"
)

// keepalives sends the keepalives of a client's streams from one timer
// that ticks keepaliveTicks times per Keepalive, each tick for one bucket
// of streams, where each stream had a timer of its own: at ten thousand
// idle sessions, every keepalive was a wake-up of an idle process, and the
// pongs came back one by one. Each tick starts a goroutine per keepalive,
// so a stalled socket holds up only its own. The timer runs only while
// there are streams.
type keepalives struct {
	tick   time.Duration
	tickFn func()

	mu      sync.Mutex
	timer   *time.Timer
	buckets [keepaliveTicks][]*Stream
	cur     int // the bucket the next tick sends
	next    int // the bucket the next stream joins
	n       int
}

// keepaliveTicks is how many ticks, and buckets, a Keepalive has.
const keepaliveTicks = 15

func newKeepalives(every time.Duration) *keepalives {
	k := &keepalives{tick: max(every/keepaliveTicks, 1)}
	k.tickFn = k.fire
	return k
}

// join files s in the next bucket: its first keepalive comes within one
// Keepalive, then one every Keepalive.
func (k *keepalives) join(s *Stream) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s.kaBucket, s.kaIdx = k.next, len(k.buckets[k.next])
	k.buckets[k.next] = append(k.buckets[k.next], s)
	k.next = (k.next + 1) % keepaliveTicks
	if k.n++; k.n == 1 {
		if k.timer == nil {
			k.timer = time.AfterFunc(k.tick, k.tickFn)
		} else {
			k.timer.Reset(k.tick)
		}
	}
}

// leave takes s off (it closed). Idempotent.
func (k *keepalives) leave(s *Stream) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s.kaIdx < 0 {
		return
	}
	b := k.buckets[s.kaBucket]
	last := len(b) - 1
	moved := b[last]
	b[s.kaIdx], moved.kaIdx = moved, s.kaIdx
	b[last] = nil
	k.buckets[s.kaBucket] = b[:last]
	s.kaIdx = -1
	if k.n--; k.n == 0 {
		k.timer.Stop()
	}
}

// fire sends the keepalives of the current bucket.
func (k *keepalives) fire() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range k.buckets[k.cur] {
		go s.sendKeepalive()
	}
	k.cur = (k.cur + 1) % keepaliveTicks
	if k.n > 0 {
		k.timer.Reset(k.tick)
	}
}
