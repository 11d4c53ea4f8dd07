package session

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/dlsse/dlsse/sse"
	"github.com/dlsse/dlsse/upstream"
)

// ReasonTokenExpired ends a stream whose credential expired (or that
// Direct Line stopped accepting): it read with that credential's rights,
// and they are gone.
const ReasonTokenExpired sse.Reason = "token_expired"

// accessRetry is the pause before re-checking a credential again when
// Direct Line could not be asked.
const accessRetry = 30 * time.Second

// access is what one credential lets a session's subscribers read, and
// until when. Subscribers that presented the same credential share one.
// Fields other than ended are guarded by the session's mu.
type access struct {
	credential string    // now: a refresh through dlsse replaces it
	expires    time.Time // zero: unknown, re-checked every Reverify
	subs       int
	timer      *time.Timer
	// ended, once set, is the last event of every subscriber reading
	// with this access.
	ended atomic.Pointer[sse.Event]
}

// tokenExpiredEvent is what a stream gets when its token expired.
var tokenExpiredEvent = ErrorEvent("TokenExpired", "the token this stream was opened with expired; refresh it and reconnect")

// grantLocked returns the access of credential, made on first use, and
// counts one more subscriber on it.
func (s *Session) grantLocked(credential string) *access {
	key := tokenKey(credential)
	a := s.accessOfLocked(key)
	if a == nil || a.ended.Load() != nil {
		a = &access{credential: credential, expires: s.m.verifier.expiryOf(credential)}
		s.setAccessLocked(key, a)
		s.armAccessLocked(a)
	}
	a.subs++
	return a
}

// keyedAccess is one entry of a session's access table: a conversation
// has one credential in use, two across a refresh, rarely more, so a
// slice searched in order costs less than a map (~400 B a session).
type keyedAccess struct {
	key [32]byte // tokenKey of a credential
	a   *access
}

// accessOfLocked is the access of the credential whose tokenKey is key.
func (s *Session) accessOfLocked(key [32]byte) *access {
	for _, e := range s.access {
		if e.key == key {
			return e.a
		}
	}
	return nil
}

// setAccessLocked makes key's access a.
func (s *Session) setAccessLocked(key [32]byte, a *access) {
	for i := range s.access {
		if s.access[i].key == key {
			s.access[i].a = a
			return
		}
	}
	s.access = append(s.access, keyedAccess{key: key, a: a})
}

// releaseLocked counts one subscriber less on a; the last one forgets it.
func (s *Session) releaseLocked(a *access) {
	if a.subs--; a.subs > 0 {
		return
	}
	if a.timer != nil {
		a.timer.Stop()
	}
	s.access = slices.DeleteFunc(s.access, func(e keyedAccess) bool { return e.a == a })
}

// armAccessLocked schedules a's next look: at its expiry when known, else
// after Reverify.
func (s *Session) armAccessLocked(a *access) {
	d := s.m.cfg.Reverify
	if !a.expires.IsZero() {
		d = max(time.Until(a.expires), 0)
	}
	s.armAccessInLocked(a, d)
}

func (s *Session) armAccessInLocked(a *access, d time.Duration) {
	if a.timer != nil {
		a.timer.Stop()
	}
	if s.stopped {
		return
	}
	a.timer = time.AfterFunc(d, func() { s.checkAccess(a) })
}

// checkAccess runs when a's time came: it ends a known lifetime that was
// not extended, and re-checks an unknown one with Direct Line. It runs on
// its timer's goroutine, counted in s.tasks.
func (s *Session) checkAccess(a *access) {
	if !s.tasks.Add() {
		return
	}
	defer s.tasks.Done()
	s.mu.Lock()
	if a.subs == 0 || a.ended.Load() != nil {
		s.mu.Unlock()
		return
	}
	if !a.expires.IsZero() {
		if time.Now().Before(a.expires) { // a refresh carried it along
			s.armAccessLocked(a)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		s.lg().Info().Msg("a stream's token expired; its streams end")
		s.endAccess(a, tokenExpiredEvent)
		return
	}
	credential := a.credential
	s.mu.Unlock()
	err := s.m.verifier.verify(s.ctx, s.id, credential, s.log.Watermark(), true)
	var apiErr *upstream.APIError
	switch {
	case err == nil:
		s.mu.Lock()
		s.armAccessInLocked(a, s.m.cfg.Reverify)
		s.mu.Unlock()
	case errors.As(err, &apiErr):
		s.lg().Info().Int("status", apiErr.Status).Str("code", apiErr.Code).Msg("Direct Line no longer accepts a stream's credential; its streams end")
		s.endAccess(a, errorEventFor(apiErr))
	case errors.Is(err, context.Canceled):
	default:
		s.mu.Lock()
		s.armAccessInLocked(a, accessRetry)
		s.mu.Unlock()
	}
}

// endAccess makes every subscriber reading with a write ev and end.
func (s *Session) endAccess(a *access, ev sse.Event) {
	a.ended.Store(&ev)
	s.mu.Lock()
	for _, sub := range s.subs {
		if sub.acc == a {
			sub.wake()
		}
	}
	s.mu.Unlock()
}

// carryAccess moves the streams reading with token old onto token new
// (refreshed through dlsse, with its lifetime): they read on until new
// expires.
func (s *Session) carryAccess(old, new string, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accessOfLocked(tokenKey(old))
	if a == nil || a.ended.Load() != nil {
		return
	}
	a.credential, a.expires = new, expires
	if k := tokenKey(new); s.accessOfLocked(k) == nil {
		s.setAccessLocked(k, a)
	}
	s.armAccessLocked(a)
}

// carryAccessKey is carryAccess for a refresh made through another
// replica, which tells the old token's key and the new lifetime only.
func (s *Session) carryAccessKey(old [32]byte, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accessOfLocked(old)
	if a == nil || a.ended.Load() != nil || expires.IsZero() {
		return
	}
	a.expires = expires
	s.armAccessLocked(a)
}

// stopAccessLocked stops every access timer (the session is over).
func (s *Session) stopAccessLocked() {
	for _, e := range s.access {
		if e.a.timer != nil {
			e.a.timer.Stop()
		}
	}
}

// TokenRefreshed records that Direct Line exchanged token old for new
// (lifetime expiresIn seconds) in a refresh made through dlsse: streams of
// the conversation reading with old read on with new, and the session may
// call Direct Line with it.
func (m *Manager) TokenRefreshed(conversationID, old, new string, expiresIn int) {
	m.LearnToken(new, expiresIn)
	m.markVerified(conversationID, new)
	s := m.Session(conversationID)
	var expires time.Time
	if expiresIn > 0 {
		expires = time.Now().Add(time.Duration(expiresIn) * time.Second)
	}
	if m.clustered {
		// Streams with the old token on other replicas read on too.
		// Only the old token's key travels, never a token.
		m.tell(conversationID, Message{Kind: KindRefreshed, Token: tokenKey(old), Expires: expires})
	}
	if s == nil {
		return
	}
	s.carryAccess(old, new, expires)
	s.addCredential(new, s.refreshTime(expiresIn))
}
