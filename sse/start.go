package sse

import (
	"context"
	"sync/atomic"
	"time"
)

// A Notifier is a Feed that can call a function whenever Next may have
// something new, instead of signalling its Ready channel. Start needs one.
type Notifier interface {
	Feed
	// SetNotify makes the feed call f (nil: signal Ready again). f must
	// not block: it is called from whoever publishes.
	SetNotify(f func())
}

// Start runs a stream like Serve, but holds no goroutine while the stream
// is idle: a goroutine is started when the feed has something, the
// heartbeat is due or ctx ends, writes what there is, and exits. An idle
// stream costs its state and a timer instead of a parked goroutine's stack
// (4 KiB or more), which is most of what an idle chat costs a gateway.
// Writes still happen on a goroutine of the stream's own, so a slow client
// holds up nobody else.
//
// done is called once, from the stream's goroutine, with the reason the
// stream ended; the stream no longer touches w or feed then. Start never
// closes w, and unhooks itself from feed, ctx and opt.Inbound before done.
func Start(ctx context.Context, w Writer, feed Notifier, opt Options, done func(Reason)) {
	start(ctx, w, feed, opt, done)
}

func start(ctx context.Context, w Writer, feed Notifier, opt Options, done func(Reason)) *idleStream {
	s := &idleStream{stream: newStream(w, opt), ctx: ctx, feed: feed, done: done}
	s.runFn = s.run
	s.state.Store(stateRunning) // the first run, below, writes the retry hint
	if opt.Heartbeat > 0 {
		s.timer = time.AfterFunc(opt.Heartbeat, s.heartbeat)
	}
	if opt.Inbound != nil {
		if stop, err := opt.Inbound.Watch(s.readable); err == nil {
			s.stopWatch = stop
		}
	}
	s.stopCtx = context.AfterFunc(ctx, s.schedule)
	feed.SetNotify(s.schedule)
	go s.runFn()
	return s
}

// The states of an idleStream.
const (
	stateIdle    int32 = iota // no goroutine: schedule starts one
	stateRunning              // a goroutine is writing
	stateAgain                // a goroutine is writing, and must look again before going idle
	stateEnded                // done was called, or is about to be
)

type idleStream struct {
	stream
	ctx       context.Context
	feed      Notifier
	done      func(Reason)
	timer     *time.Timer // nil without a heartbeat
	stopCtx   func() bool
	stopWatch func() // nil without a watched Inbound

	state   atomic.Int32
	pingDue atomic.Bool
	readDue atomic.Bool // the client sent something or hung up
	runFn   func()      // s.run, bound once: "go s.run()" would allocate a closure per wake-up
}

// schedule makes sure a goroutine looks at the stream soon: it starts one
// when there is none, or tells the running one to look again.
func (s *idleStream) schedule() {
	for {
		switch s.state.Load() {
		case stateIdle:
			if s.state.CompareAndSwap(stateIdle, stateRunning) {
				go s.runFn()
				return
			}
		case stateRunning:
			if s.state.CompareAndSwap(stateRunning, stateAgain) {
				return
			}
		default: // already told, or ended
			return
		}
	}
}

// heartbeat runs when the stream was silent for a heartbeat.
func (s *idleStream) heartbeat() {
	s.pingDue.Store(true)
	s.schedule()
}

// readable runs when the client sent something or hung up.
func (s *idleStream) readable() {
	s.readDue.Store(true)
	s.schedule()
}

// run writes until there is nothing to write, then lets the goroutine go,
// unless schedule was called meanwhile.
func (s *idleStream) run() {
	for {
		if end := s.step(); end != "" {
			s.end(end)
			return
		}
		if s.state.CompareAndSwap(stateRunning, stateIdle) {
			return
		}
		// stateAgain: something arrived while we were writing.
		s.state.Store(stateRunning)
	}
}

// step is one look at the stream: shutdown, what the client sent, what
// the feed has, or the heartbeat if nothing else was written.
func (s *idleStream) step() Reason {
	if s.ctx.Err() != nil {
		if s.opt.OnShutdown != nil {
			_ = s.write(s.opt.OnShutdown(nil))
		}
		return ReasonShutdown
	}
	if s.readDue.Swap(false) {
		if end := s.read(); end != "" {
			return end
		}
	}
	wrote, end := s.drain(s.ctx, s.feed)
	if end != "" {
		return end
	}
	if !wrote && s.pingDue.Load() {
		if err := s.write(s.ping()); err != "" {
			return err
		}
		wrote = true
	}
	if wrote && s.timer != nil {
		s.pingDue.Store(false)
		s.timer.Reset(s.opt.Heartbeat)
	}
	return ""
}

// read lets the Inbound take what the client sent and writes its answer.
func (s *idleStream) read() Reason {
	bp := bufPool.Get().(*[]byte)
	out, end := s.opt.Inbound.Read((*bp)[:0])
	err := s.write(out)
	if cap(out) <= maxPooledBuffer {
		*bp = out[:0]
		bufPool.Put(bp)
	}
	if err != "" {
		return err
	}
	return end
}

// end unhooks the stream from everything that could schedule it, then
// reports why it ended.
func (s *idleStream) end(reason Reason) {
	s.state.Store(stateEnded)
	s.feed.SetNotify(nil)
	s.stopCtx()
	if s.stopWatch != nil {
		s.stopWatch()
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.done(reason)
}
