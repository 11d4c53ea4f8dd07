package sse

import (
	"context"
	"sync"
	"time"
)

// Heartbeats pings the quiet streams that share it (Options.Heartbeats),
// turned by one timer heartbeatTicks times per heartbeat, where each
// stream would have a timer of its own: ten thousand idle streams then
// wake the process 15 times a heartbeat, not ten thousand, and a stream
// costs three fields, not a timer. A stream is checked at the first tick
// at or after a heartbeat of quiet: a ping comes at most a tick late. The
// timer runs only while a stream is on the wheel: a Heartbeats needs no
// stopping. The wheel also watches the context its streams are started
// with, so that they need no watch each (context.AfterFunc costs a stream
// a few hundred bytes): when it ends, the wheel wakes them all.
type Heartbeats struct {
	ctx    context.Context
	every  time.Duration
	tick   time.Duration
	timer  *time.Timer
	fireFn func()

	mu    sync.Mutex
	slots map[int64][]*idleStream // by tick number (monotonic() / tick)
	n     int                     // streams on the wheel, filed or being checked
	last  int64                   // the last tick number checked
	due   []*idleStream           // fire's, reused
	ended bool                    // ctx ended: every stream was woken
}

// heartbeatTicks is how many ticks a heartbeat has.
const heartbeatTicks = 15

// NewHeartbeats returns a wheel for streams whose Options.Heartbeat is
// every. Streams started with ctx are woken by the wheel when it ends;
// others watch their own context.
func NewHeartbeats(ctx context.Context, every time.Duration) *Heartbeats {
	h := &Heartbeats{ctx: ctx, every: every, tick: max(every/heartbeatTicks, 1), slots: map[int64][]*idleStream{}}
	h.fireFn = h.fire
	context.AfterFunc(ctx, h.wakeAll)
	return h
}

// watches reports whether the wheel wakes s's stream when ctx ends.
func (h *Heartbeats) watches(ctx context.Context) bool { return h.ctx == ctx }

// wakeAll wakes every stream on the wheel (ctx ended: they shut down);
// those a fire is checking are woken by it.
func (h *Heartbeats) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended = true
	for _, slot := range h.slots {
		for _, s := range slot {
			s.Wake()
		}
	}
}

// join puts s on the wheel, due a heartbeat after its last write.
func (h *Heartbeats) join(s *idleStream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.wheel = h
	if h.n++; h.n == 1 {
		h.last = monotonic() / int64(h.tick)
		if h.timer == nil {
			h.timer = time.AfterFunc(h.tick, h.fireFn)
		} else {
			h.timer.Reset(h.tick)
		}
	}
	h.fileLocked(s, s.lastWrite.Load()+int64(h.every))
}

// leave takes s off the wheel (the stream ended).
func (h *Heartbeats) leave(s *idleStream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.wheelGone {
		return
	}
	s.wheelGone = true
	if i := s.wheelIdx; i >= 0 {
		slot := h.slots[s.wheelSlot]
		last := len(slot) - 1
		moved := slot[last]
		slot[i], moved.wheelIdx = moved, i
		slot[last] = nil
		if last == 0 {
			delete(h.slots, s.wheelSlot)
		} else {
			h.slots[s.wheelSlot] = slot[:last]
		}
		s.wheelIdx = -1
	}
	if h.n--; h.n == 0 {
		h.timer.Stop()
	}
}

// fileLocked files s under the first tick at or after at (monotonic()).
func (h *Heartbeats) fileLocked(s *idleStream, at int64) {
	slot := max((at+int64(h.tick)-1)/int64(h.tick), h.last+1)
	s.wheelSlot, s.wheelIdx = slot, len(h.slots[slot])
	h.slots[slot] = append(h.slots[slot], s)
}

// fire checks the streams due by now: a stream quiet for a heartbeat is
// pinged (WriteNow: on this goroutine when the socket takes it), any
// other filed again a heartbeat after its last write.
func (h *Heartbeats) fire() {
	now := monotonic()
	h.mu.Lock()
	due := h.due[:0]
	h.due = nil // this fire's until it is done, should the next one start early
	for t := h.last + 1; t <= now/int64(h.tick); t++ {
		for _, s := range h.slots[t] {
			s.wheelIdx = -1
			due = append(due, s)
		}
		delete(h.slots, t)
	}
	h.last = max(h.last, now/int64(h.tick))
	h.mu.Unlock()

	for _, s := range due {
		if now-s.lastWrite.Load() >= int64(h.every) {
			s.lastWrite.Store(now) // the ping about to be written
			s.pingDue.Store(true)
			s.WriteNow()
		}
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	for i, s := range due {
		if !s.wheelGone {
			h.fileLocked(s, s.lastWrite.Load()+int64(h.every))
			if h.ended {
				s.Wake() // out of the slots when wakeAll ran
			}
		}
		due[i] = nil
	}
	h.due = due[:0]
	if h.n > 0 {
		h.timer.Reset(h.tick)
	}
}
