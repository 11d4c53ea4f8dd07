package session

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/dlsse/dlsse/sse"
	"github.com/dlsse/dlsse/upstream"
)

// State is what a session tells its subscribers about the upstream stream.
type State string

// The states a session reports in `status` events.
const (
	// StateConnecting: the first upstream stream is being opened.
	StateConnecting State = "connecting"
	// StateOnline: the upstream stream is open.
	StateOnline State = "online"
	// StateReconnecting: the stream dropped; activities are not lost,
	// they arrive once it is back.
	StateReconnecting State = "reconnecting"
	// StateEnded: the conversation ended (endOfConversation).
	StateEnded State = "ended"
	// StateUnavailable: Direct Line cannot be reached now; the stream
	// ends and the client comes back after the retry hint.
	StateUnavailable State = "unavailable"
)

// Status is the payload of an `event: status`.
type Status struct {
	State State `json:"state"`
	// Reason says why, for humans and logs ("upstream closed the stream").
	Reason string `json:"reason,omitempty"`
	// RetryIn is the delay before the next attempt, in milliseconds.
	RetryIn int64 `json:"retryIn,omitempty"`
}

// setStatus gives every subscriber the owner's new status, here and on the
// other replicas.
func (s *Session) setStatus(st Status) {
	if s.setLocalStatus(st) {
		s.announce(s.owning(), Message{Kind: KindStatus, Status: st})
	}
}

// setLocalStatus gives this replica's subscribers a new status (the
// owner's, or its own view when it cannot follow one), and reports whether
// it changed.
func (s *Session) setLocalStatus(st Status) bool {
	s.mu.Lock()
	changed := s.setStatusLocked(st)
	s.mu.Unlock()
	if changed {
		s.notify()
	}
	return changed
}

// announce tells the other replicas what the owner of tenure o says about
// its socket. Best effort: a status or a typing that does not arrive is
// overtaken by the next; an owner that lost its lease finds out on its next
// append or renewal.
func (s *Session) announce(o *ownership, m Message) {
	if !s.m.clustered || o == nil {
		return
	}
	ctx, cancel := context.WithTimeout(o.ctx, leaseCallTimeout)
	defer cancel()
	if err := s.m.shared.Bus.PublishOwned(ctx, o.lease, m); err != nil && !errors.Is(err, context.Canceled) {
		s.lg().Debug().Err(err).Msg("could not tell the other replicas")
	}
}

func (s *Session) setStatusLocked(st Status) bool {
	if st == s.status && s.statusJSON != nil {
		return false
	}
	data, _ := json.Marshal(st)
	s.status = st
	s.statusVer++
	s.statusSeen.Store(s.statusVer)
	s.statusJSON = data
	return true
}

// currentStatus returns the status (JSON) if it is newer than ver.
func (s *Session) currentStatus(ver uint64) ([]byte, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ver == s.statusVer {
		return nil, ver
	}
	return s.statusJSON, s.statusVer
}

// Status returns the session's current status.
func (s *Session) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// unavailableEvent ends a stream that cannot be served right now.
var unavailableEvent = func() sse.Event {
	data, _ := json.Marshal(Status{State: StateUnavailable, Reason: "could not fetch missed activities from Direct Line; resume later"})
	return sse.NewEvent("", "status", data)
}()

// ErrorEvent encodes a Direct Line-shaped error as an `event: error`, the
// last thing a stream writes when the conversation cannot go on.
func ErrorEvent(code, message string) sse.Event {
	return sse.NewEvent("", "error", upstream.ErrorJSON(code, message))
}

// errorEventFor encodes what ended a session.
func errorEventFor(err error) sse.Event {
	if apiErr, ok := err.(*upstream.APIError); ok {
		code, msg := apiErr.Code, apiErr.Message
		if code == "" {
			code = "UpstreamError"
		}
		if msg == "" {
			msg = "Direct Line refused the conversation"
		}
		return ErrorEvent(code, msg)
	}
	return ErrorEvent("UpstreamError", "the conversation cannot be continued")
}

func ms(d time.Duration) int64 { return d.Milliseconds() }
