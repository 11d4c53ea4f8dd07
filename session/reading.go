package session

import (
	"context"
	"time"

	"github.com/dlsse/dlsse/internal/turn"
	"github.com/dlsse/dlsse/upstream"
)

// reading is one upstream stream being read. The manager's watcher calls
// readable when the socket has something; a goroutine then reads and
// ingests every whole message and ends when there is none left, so a quiet
// stream holds no goroutine, and its deep work (decoding, fan-out) leaves
// no stack behind. The turn keeps that goroutine one at a time.
type reading struct {
	s       *Session
	o       *ownership
	stream  *upstream.Stream
	attempt int       // failures before this stream, for the backoff
	opened  time.Time // when it connected: a stable one resets attempt

	turn       turn.Turn   // who reads: one goroutine at a time
	runFn      func()      // run, bound once: a go statement's wrapper would allocate
	unwatchCtx func() bool // the tenure's end closes the stream
}

// attach starts reading stream for tenure o.
func (s *Session) attach(o *ownership, stream *upstream.Stream, attempt int) {
	r := &reading{s: s, o: o, stream: stream, attempt: attempt, opened: time.Now()}
	r.runFn = r.run
	r.unwatchCtx = context.AfterFunc(o.ctx, func() { _ = stream.Close() })
	w, err := s.m.watchers.Get()
	if err == nil {
		err = stream.Watch(w, r.readable)
	}
	if err != nil && r.turn.Take() {
		// Unwatched, the stream cannot be read: a drop like any other.
		// (If the watcher called before Watch failed, the reader it
		// started holds the turn, finds the stream closed and decides.)
		r.turn.End()
		go s.streamEnded(r, err)
	}
}

// readable is the watcher's call: it must not block.
func (r *reading) readable() {
	if r.turn.Take() {
		go r.runFn()
	}
}

// run ingests what the stream has until it has nothing more, or it
// dropped: then the session decides what next, on this goroutine.
func (r *reading) run() {
	for {
		if err := r.drain(); err != nil {
			r.turn.End()
			r.s.streamEnded(r, err)
			return
		}
		if r.turn.Release() {
			return
		}
		// readable came meanwhile: look again
	}
}

// drain ingests every whole message the stream has now.
func (r *reading) drain() error {
	for {
		m, ok, err := r.stream.TryMessage()
		if err != nil || !ok {
			return err
		}
		if err := r.s.ingestMessage(r.o, m); err != nil {
			return err
		}
	}
}

// ingestMessage decodes and ingests one stream message, then releases it.
// Its error is the journal's refusal (ErrNotOwner); a malformed message is
// logged and skipped.
func (s *Session) ingestMessage(o *ownership, m upstream.Message) error {
	if m.Empty() { // a keepalive: nothing to decode
		m.Release()
		return nil
	}
	set, known, err := m.Decode()
	m.Release()
	switch {
	case err != nil:
		// Decode's only error is a malformed message (FrameError).
		s.lg().Warn().Msg("malformed upstream stream message skipped")
		err = nil
	case known:
		err = s.ingest(o, set) // keeps nothing of the set's bytes
	}
	set.Release()
	return err
}
