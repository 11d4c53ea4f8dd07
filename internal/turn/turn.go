// Package turn keeps a piece of work to one goroutine at a time with no
// goroutine waiting for it: whoever takes the turn does the work, and a
// Take while it is being done asks the holder to look once more before it
// lets go, so no call is lost. A stream's writes, a session's fan-out
// passes and its upstream reads all work this way.
package turn

import "sync/atomic"

// Turn is idle, held, held and asked again, or ended. The zero Turn is
// idle.
type Turn struct{ s atomic.Int32 }

const (
	idle int32 = iota
	held
	again
	ended
)

// Take reports whether the caller took the turn, which was idle: it does
// the work, then Releases. Held by someone else, the turn is marked for
// them to look again, and Take returns false; ended, false.
func (t *Turn) Take() bool {
	for {
		switch t.s.Load() {
		case idle:
			if t.s.CompareAndSwap(idle, held) {
				return true
			}
		case held:
			if t.s.CompareAndSwap(held, again) {
				return false
			}
		default:
			return false
		}
	}
}

// Hold gives the turn to the caller outright: for a first round started
// before anyone else can Take.
func (t *Turn) Hold() { t.s.Store(held) }

// Release lets the turn go after a round of work. It returns false when a
// Take came during the round: the holder keeps the turn and does another.
func (t *Turn) Release() bool {
	if t.s.CompareAndSwap(held, idle) {
		return true
	}
	t.s.CompareAndSwap(again, held)
	return false
}

// Drop lets the turn go without another round, whatever was asked.
func (t *Turn) Drop() { t.s.Store(idle) }

// End ends the turn for good: Take returns false from then on.
func (t *Turn) End() { t.s.Store(ended) }

// Idle reports whether nobody holds the turn (and it has not ended).
func (t *Turn) Idle() bool { return t.s.Load() == idle }

// Ended reports whether End was called.
func (t *Turn) Ended() bool { return t.s.Load() == ended }
