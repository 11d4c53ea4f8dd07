package sse

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"github.com/dlsse/dlsse/internal/turn"
)

// A Notifier is a Feed that tells its stream when Next may have something
// new, through the Waker Start hands it, instead of signalling Ready.
// Start needs one.
type Notifier interface {
	Feed
	// SetWaker hands the feed its stream's Waker (nil: the stream ended;
	// signal Ready again). A Waker's methods never block: publishers call
	// them.
	SetWaker(w Waker)
	// Prompt reports whether Next would answer at once, without waiting
	// for work of its own (a fetch): only then may a publisher have the
	// stream written on its own goroutine.
	Prompt() bool
}

// A Waker is how a feed's publisher has its stream write what is new.
type Waker interface {
	// Wake has the stream look at its feed soon, on a goroutine of its own.
	Wake()
	// WriteNow writes what the feed has on the caller's goroutine, when
	// the stream is idle and that takes no waiting: a write the client's
	// socket cannot take at once is left to the stream's own goroutine,
	// as is anything else (the client's bytes, the end). Otherwise it is
	// Wake.
	WriteNow()
}

// Start runs a stream like Serve, but holds no goroutine while the stream
// is idle: a goroutine is started when the feed has something, the
// heartbeat is due or ctx ends, writes what there is, and exits. An idle
// stream costs its state (and a timer, unless Options.Heartbeats pings it)
// instead of a parked goroutine's stack (4 KiB or more), which is most of
// what an idle chat costs a gateway.
//
// A publisher may also write an idle stream itself (Waker.WriteNow), with
// one non-blocking write when w is a connection: a chat event then costs
// the write(2) and no goroutine, no deadline. Whatever would wait is
// handed to a goroutine of the stream's own, so a slow client holds up
// nobody else.
//
// A w that is a connection with a socket (a syscall.Conn) must be the
// socket itself, or a wrapper whose Write is the socket's: WriteNow's raw
// writes go around any other Write.
//
// done is called once, from the stream's goroutine, with the reason the
// stream ended; the stream no longer touches w or feed then. Start never
// closes w, and unhooks itself from feed, ctx and opt.Inbound before done.
func Start(ctx context.Context, w Writer, feed Notifier, opt Options, done func(Reason)) {
	start(ctx, w, feed, opt, done)
}

func start(ctx context.Context, w Writer, feed Notifier, opt Options, done func(Reason)) *idleStream {
	s := &idleStream{stream: newStream(w, opt), ctx: ctx, feed: feed, done: done}
	s.bind()
	s.runFn = s.run
	s.turn.Hold() // the first run, below, writes the retry hint
	s.lastWrite.Store(monotonic())
	s.wheelIdx = -1
	switch {
	case opt.Heartbeat <= 0:
	case opt.Heartbeats != nil:
		opt.Heartbeats.join(s)
	default:
		// Set before it can fire: heartbeat resets it.
		s.timer = time.AfterFunc(math.MaxInt64, s.heartbeat)
		s.timer.Reset(opt.Heartbeat)
	}
	if opt.Inbound != nil {
		if stop, err := opt.Inbound.Watch(s.readable); err == nil {
			s.stopWatch = stop
		}
	}
	if opt.Heartbeat <= 0 || opt.Heartbeats == nil || !opt.Heartbeats.watches(ctx) {
		s.stopCtx = context.AfterFunc(ctx, s.Wake)
	}
	feed.SetWaker(s)
	go s.runFn()
	return s
}

type idleStream struct {
	stream
	ctx       context.Context
	feed      Notifier
	done      func(Reason)
	wheel     *Heartbeats // pings the stream (heartbeat.go); or timer does
	timer     *time.Timer
	stopCtx   func() bool // nil when the heartbeat wheel watches ctx
	stopWatch func()      // nil without a watched Inbound

	turn      turn.Turn // who writes the stream (its feed's Next, its writes)
	pingDue   atomic.Bool
	readDue   atomic.Bool  // the client sent something or hung up
	lastWrite atomic.Int64 // monotonic(): the heartbeat is due a Heartbeat after it
	runFn     func()       // s.run, bound once: "go s.run()" would allocate a closure per wake-up

	// Left by WriteNow for the stream's goroutine: the rest of a batch the
	// socket did not take (in its pooled buffer), and why the stream ends.
	held    *[]byte
	heldOff int
	ending  Reason

	// Where the stream is on its wheel, under the wheel's lock: the tick
	// it is filed under and its index there (-1: not filed), and whether
	// it left.
	wheelSlot int64
	wheelIdx  int
	wheelGone bool
}

// Wake implements Waker: it starts a goroutine when there is none, or
// tells the running one to look again.
func (s *idleStream) Wake() {
	if s.turn.Take() {
		go s.runFn()
	}
}

// WriteNow implements Waker.
func (s *idleStream) WriteNow() {
	if s.raw == nil {
		s.Wake() // no socket to try: the stream's goroutine writes
		return
	}
	if s.turn.Take() && !s.writeNow() {
		go s.runFn()
	}
}

// writeNow writes what the feed has (or the heartbeat's ping, when due and
// there is nothing else) on the caller's goroutine, which owns the stream,
// and lets the stream go idle. It returns false, still owning the stream,
// when the stream's goroutine must go on: something is due that may wait
// (the client's bytes, shutdown, a fetch), the socket did not take a whole
// batch (held), or the stream ends (ending).
func (s *idleStream) writeNow() bool {
	for {
		if s.ctx.Err() != nil || s.readDue.Load() || !s.feed.Prompt() {
			return false
		}
		bp := bufPool.Get().(*[]byte)
		buf, end := s.feed.Next(s.ctx, (*bp)[:0])
		if s.pingDue.Swap(false) && len(buf) == 0 {
			buf = append(buf, s.ping()...) // due, and nothing else said
		}
		*bp = buf
		if len(buf) > 0 {
			n, err := s.tryWrite(buf)
			switch {
			case err != nil:
				putBuf(bp)
				s.ending = reasonOf(err)
				return false
			case n < len(buf):
				s.held, s.heldOff, s.ending = bp, n, end
				return false
			}
			s.lastWrite.Store(monotonic())
		}
		putBuf(bp)
		if end != "" {
			s.ending = end
			return false
		}
		if s.turn.Release() {
			return true
		}
		// woken meanwhile: look again
	}
}

// heartbeat is the stream's own timer's (without Options.Heartbeats). The
// timer is not moved at every write (a timer update per event): when the
// stream wrote since, it is set for the rest of the quiet it needs.
func (s *idleStream) heartbeat() {
	quiet := time.Duration(monotonic() - s.lastWrite.Load())
	if quiet < s.opt.Heartbeat {
		s.timer.Reset(s.opt.Heartbeat - quiet)
	} else {
		s.timer.Reset(s.opt.Heartbeat) // the ping about to be written counts as a write
	}
	if s.turn.Ended() {
		// end's Stop came before the Reset above (it does not wait for
		// a running callback): stop again, or the timer would re-arm
		// itself forever, holding the stream. end ends the turn before
		// it stops the timer.
		s.timer.Stop()
		return
	}
	if quiet >= s.opt.Heartbeat {
		s.pingDue.Store(true)
		s.WriteNow()
	}
}

// epoch is where monotonic counts from.
var epoch = time.Now()

// monotonic is the time since epoch on the monotonic clock, in ns: a
// stream's last write, which a wall clock set back would push a heartbeat
// away from by as much.
func monotonic() int64 { return int64(time.Since(epoch)) }

// readable runs when the client sent something or hung up.
func (s *idleStream) readable() {
	s.readDue.Store(true)
	s.Wake()
}

// run writes until there is nothing to write, then lets the goroutine go,
// unless it was woken meanwhile.
func (s *idleStream) run() {
	for {
		if end := s.step(); end != "" {
			s.end(end)
			return
		}
		if s.turn.Release() {
			return
		}
		// Woken: something arrived while we were writing.
	}
}

// step is one look at the stream: what WriteNow left, shutdown, what the
// client sent, what the feed has, or the heartbeat if nothing else was
// written.
func (s *idleStream) step() Reason {
	if end := s.finishHeld(); end != "" {
		return end
	}
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
	if wrote {
		s.pingDue.Store(false)
		s.lastWrite.Store(monotonic())
	}
	return ""
}

// finishHeld writes what WriteNow left and returns the end it met.
func (s *idleStream) finishHeld() Reason {
	end := s.ending
	s.ending = ""
	if bp := s.held; bp != nil {
		s.held = nil
		err := s.write((*bp)[s.heldOff:])
		putBuf(bp)
		if err != "" {
			return err
		}
		s.lastWrite.Store(monotonic())
	}
	return end
}

// read lets the Inbound take what the client sent and writes its answer.
func (s *idleStream) read() Reason {
	bp := bufPool.Get().(*[]byte)
	out, end := s.opt.Inbound.Read((*bp)[:0])
	*bp = out
	err := s.write(out)
	putBuf(bp)
	if err != "" {
		return err
	}
	return end
}

// end unhooks the stream from everything that could wake it, then reports
// why it ended.
func (s *idleStream) end(reason Reason) {
	s.turn.End()
	s.feed.SetWaker(nil)
	if s.stopCtx != nil {
		s.stopCtx()
	}
	if s.stopWatch != nil {
		s.stopWatch()
	}
	if s.wheel != nil {
		s.wheel.leave(s)
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.done(reason)
}
