package session

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/dlsse/dlsse/sse"
)

// Subscriber is one reader of a session: it implements sse.Feed over the
// session's log. Next is called by one goroutine at a time: whoever owns
// the stream (its own goroutine, a publisher, a fan-out pass).
type Subscriber struct {
	s     *Session
	wire  Wire
	set   wsSet   // WireWebSocket: the frame being filled
	acc   *access // what its credential lets it read; set on attach
	idx   int     // in the session's subs while attached, else -1 (under s.mu)
	wakeC chan struct{}
	waker atomic.Pointer[sse.Waker] // set by sse.Start: used instead of wakeC

	pos        uint64 // next log position to read
	attachHead uint64 // log head when attached: ephemeral entries before it are history
	statusVer  uint64
	last       Cursor // where this subscriber stands, for a catch-up

	// Next's state while the log calls take: fields, not locals, so that
	// no closure has to capture them. read is take bound once, here: a
	// closure made in each Next call would escape through the Log
	// interface, and with the variables it captures cost allocations per
	// batch, per subscriber.
	read      func(*Entry) bool
	batch     []byte // the batch being filled; nil outside Next
	delivered int    // activities appended to batch

	// Catch-up state, when the log could not serve the cursor.
	pending []pendingEvent      // fetched from Direct Line, not yet written
	skip    map[uint64]struct{} // ids already delivered from a fetch
	joining bool                // waiting for the log to reach the fetch's end
	join    anchor

	closeOnce sync.Once
}

type pendingEvent struct {
	ev     sse.Event
	cursor Cursor
}

// anchor is the end of a catch-up fetch, where the subscriber joins the log.
type anchor struct {
	head      uint64 // log head when the fetch was made
	watermark string
	last      uint64
	hasLast   bool
}

var _ sse.Notifier = (*Subscriber)(nil)

func newSubscriber(s *Session, cursor *Cursor, wire Wire) *Subscriber {
	sub := &Subscriber{s: s, wire: wire, set: wsSet{at: -1}, idx: -1, wakeC: make(chan struct{}, 1)}
	sub.read = sub.take
	head, here := s.log.Position()
	sub.attachHead = head
	sub.last = here
	if cursor == nil {
		sub.pos = head
		return sub
	}
	sub.last = *cursor
	seq, ok := s.log.Locate(*cursor)
	s.m.cfg.Observer.Replay(ok)
	if ok {
		sub.pos = seq
		return sub
	}
	// Not in the log: the first Next fetches from Direct Line.
	sub.pos = 0
	return sub
}

// wake has the subscriber's stream look at the log on its own goroutine.
func (sub *Subscriber) wake() {
	if w := sub.waker.Load(); w != nil {
		(*w).Wake()
		return
	}
	sub.signal()
}

// writeNow has the subscriber's stream write what is new on the caller's
// goroutine, if it can without waiting (sse.Waker).
func (sub *Subscriber) writeNow() {
	if w := sub.waker.Load(); w != nil {
		(*w).WriteNow()
		return
	}
	sub.signal()
}

func (sub *Subscriber) signal() {
	select {
	case sub.wakeC <- struct{}{}:
	default:
	}
}

// SetWaker implements sse.Notifier: wake-ups go to w instead of Ready
// (nil: Ready again). A wake-up missed while it changes is not lost to a
// stream that reads Next after setting it, as sse.Start does.
func (sub *Subscriber) SetWaker(w sse.Waker) {
	if w == nil {
		sub.waker.Store(nil)
		return
	}
	sub.waker.Store(&w)
}

// Prompt implements sse.Notifier: Next waits only for a catch-up's fetch.
func (sub *Subscriber) Prompt() bool {
	return sub.pos != 0 || sub.joining || len(sub.pending) > 0
}

// Ready implements sse.Feed.
func (sub *Subscriber) Ready() <-chan struct{} { return sub.wakeC }

// Cursor is where the subscriber stands: the cursor of the last activity it
// was given.
func (sub *Subscriber) Cursor() Cursor { return sub.last }

// ConversationID is the conversation the subscriber reads.
func (sub *Subscriber) ConversationID() string { return sub.s.id }

// Close detaches the subscriber from its session. Idempotent.
func (sub *Subscriber) Close() {
	sub.closeOnce.Do(func() { sub.s.detach(sub) })
}

// ReasonUpstream ends a stream whose catch-up Direct Line could not serve;
// the client resumes from its cursor later.
const ReasonUpstream sse.Reason = "upstream_error"

// Next implements sse.Feed: status changes first, then fetched activities,
// then the shared log, encoded for the subscriber's wire.
func (sub *Subscriber) Next(ctx context.Context, dst []byte) ([]byte, sse.Reason) {
	dst, end := sub.next(ctx, dst)
	return sub.closeSet(dst), end
}

func (sub *Subscriber) next(ctx context.Context, dst []byte) ([]byte, sse.Reason) {
	if ev := sub.acc.ended.Load(); ev != nil {
		return sub.appendLast(dst, *ev, nil), ReasonTokenExpired
	}
	dst = sub.appendStatus(dst)
	max := sub.s.m.cfg.MaxBatch
	if sub.pos == 0 && !sub.joining && len(sub.pending) == 0 {
		if err := sub.catchUp(ctx); err != nil {
			// Passing trouble, not the end of the conversation: the
			// client comes back with its cursor after the retry hint.
			return sub.appendLast(dst, unavailableEvent, ErrUnavailable), ReasonUpstream
		}
	}
	delivered := 0
	defer func() {
		if delivered > 0 {
			sub.s.m.cfg.Observer.ActivitiesDelivered(delivered)
		}
	}()
	for len(sub.pending) > 0 && len(dst) < max {
		p := sub.pending[0]
		sub.pending[0] = pendingEvent{}
		sub.pending = sub.pending[1:]
		sub.last = p.cursor
		dst = sub.appendActivity(dst, p.ev, true)
		delivered++
	}
	if len(sub.pending) > 0 {
		sub.wake() // a full batch: the stream asks again
		return dst, ""
	}
	sub.pending = nil
	if sub.joining {
		seq, ok := sub.s.log.Anchor(sub.join.watermark, sub.join.last, sub.join.hasLast)
		if !ok {
			head := sub.s.log.Head()
			if head-sub.join.head > uint64(sub.s.m.cfg.ReplayBuffer) ||
				(!sub.join.hasLast && head > sub.join.head) {
				// The log went past the anchor and forgot it before
				// we looked; or the fetch found nothing after the
				// cursor and the log names that point by a watermark
				// it never saw (the beginning has several names):
				// fetch again from where we are, which finds what
				// came since by id.
				sub.joining, sub.pos = false, 0
				sub.wake()
				return dst, ""
			}
			return dst, sub.endIfOver(&dst)
		}
		sub.pos, sub.joining = seq, false
	}
	sub.batch, sub.delivered = dst, 0
	next, fellOff := sub.s.log.Read(sub.pos, sub.read)
	dst, delivered = sub.batch, delivered+sub.delivered
	sub.batch = nil // the buffer is the caller's (pooled): do not pin it
	if fellOff {
		sub.s.m.cfg.Observer.Replay(false)
		// The log moved past us: catch up from Direct Line on the next
		// call, without dropping the client.
		sub.pos = 0
		sub.wake()
		return dst, ""
	}
	sub.pos = next
	if len(sub.skip) == 0 {
		sub.skip = nil
	}
	if sub.pos < sub.s.log.Head() {
		sub.wake() // a full batch: the stream asks again
		return dst, ""
	}
	return dst, sub.endIfOver(&dst)
}

// take is what Next gives the log to read with: it appends one entry to
// sub.batch unless the batch is full, skips what the subscriber must not
// get, and moves the subscriber's cursor. It returns false to stop.
func (sub *Subscriber) take(e *Entry) bool {
	if len(sub.batch) >= sub.s.m.cfg.MaxBatch {
		return false
	}
	if sub.skip != nil && e.Durable {
		if _, done := sub.skip[e.Hash]; done {
			delete(sub.skip, e.Hash)
			return true
		}
	}
	if !e.Durable && e.Seq < sub.attachHead {
		return true // typing from before we came: history, not news
	}
	if e.Durable {
		sub.last = e.Cursor()
	}
	sub.batch = sub.appendActivity(sub.batch, e.Event, e.Durable)
	sub.delivered++
	return true
}

// appendStatus writes the session's status if it changed since this
// subscriber last wrote it. The event carries the subscriber's cursor as
// its id: a client that loses the stream before any activity arrived then
// resumes from where it joined, not from "now", and loses nothing.
func (sub *Subscriber) appendStatus(dst []byte) []byte {
	if sub.wire != WireSSE || sub.s.statusSeen.Load() == sub.statusVer {
		return dst // Direct Line's stream has no such thing; or nothing new
	}
	data, ver := sub.s.currentStatus(sub.statusVer)
	if data == nil {
		return dst
	}
	sub.statusVer = ver
	return sse.AppendEvent(dst, sub.last.String(), "status", data)
}

// endIfOver ends the stream once the session is over and everything in the
// log was written.
func (sub *Subscriber) endIfOver(dst *[]byte) sse.Reason {
	s := sub.s
	if !s.overSeen.Load() {
		return ""
	}
	s.mu.Lock()
	over, ev, why := s.over, s.terminal, s.overErr
	s.mu.Unlock()
	if !over {
		return ""
	}
	*dst = sub.appendStatus(*dst)
	*dst = sub.appendLast(*dst, ev, why)
	return sse.ReasonEnded
}
