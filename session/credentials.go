package session

import (
	"context"
	"errors"
	"time"

	"github.com/dlsse/dlsse/upstream"
)

// maxCredentials bounds the credentials a session keeps in reserve.
const maxCredentials = 4

// credential is a secret or token Direct Line accepted for the session's
// conversation. Never logged.
type credential struct {
	value string
	// refreshAt is when a token should be exchanged for a fresh one;
	// zero when its lifetime is unknown (a secret, or a token whose
	// lifetime was never told).
	refreshAt time.Time
}

// upstreamCredential is the credential the session calls Direct Line
// with: the newest one proven for this conversation, so a subscriber that
// refreshed its token keeps the session alive after the token that opened
// it expired.
func (s *Session) upstreamCredential() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.creds) == 0 {
		return ""
	}
	return s.creds[0].value
}

// addCredential puts a proven credential first. A known refresh time is
// kept unless a newer one is given.
func (s *Session) addCredential(value string, refreshAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addCredentialLocked(value, refreshAt)
}

func (s *Session) addCredentialLocked(value string, refreshAt time.Time) {
	for i, c := range s.creds {
		if c.value == value {
			if refreshAt.IsZero() {
				refreshAt = c.refreshAt
			}
			s.creds = append(s.creds[:i], s.creds[i+1:]...)
			break
		}
	}
	s.creds = append([]credential{{value: value, refreshAt: refreshAt}}, s.creds...)
	if len(s.creds) > maxCredentials {
		s.creds = s.creds[:maxCredentials]
	}
	s.scheduleRefreshLocked()
}

// dropCredential forgets a credential Direct Line refused and reports
// whether another one is left to try.
func (s *Session) dropCredential(value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range s.creds {
		if c.value == value {
			s.creds = append(s.creds[:i], s.creds[i+1:]...)
			break
		}
	}
	s.scheduleRefreshLocked()
	return len(s.creds) > 0
}

// refreshTime is when a token told to live expiresIn seconds from now is
// refreshed: once RefreshMargin of its lifetime is left.
func (s *Session) refreshTime(expiresIn int) time.Time {
	if expiresIn <= 0 {
		return time.Time{}
	}
	life := time.Duration(expiresIn) * time.Second
	return time.Now().Add(life - time.Duration(float64(life)*s.m.cfg.RefreshMargin))
}

// learnExpiry records a token lifetime told by Direct Line (expires_in of
// a start, reconnect or refresh answer).
func (s *Session) learnExpiry(token string, expiresIn int) {
	at := s.refreshTime(expiresIn)
	if token == "" || at.IsZero() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.creds {
		if s.creds[i].value == token {
			s.creds[i].refreshAt = at
			s.scheduleRefreshLocked()
			return
		}
	}
}

// scheduleRefreshLocked arms the refresh of the upstream credential when
// its lifetime is known.
func (s *Session) scheduleRefreshLocked() {
	if s.refreshTimer != nil {
		s.refreshTimer.Stop()
		s.refreshTimer = nil
	}
	if len(s.creds) == 0 || s.creds[0].refreshAt.IsZero() || s.stopped {
		return
	}
	s.refreshTimer = time.AfterFunc(max(time.Until(s.creds[0].refreshAt), 0), s.refresh)
}

// refresh exchanges the upstream token for a fresh one. It runs on its
// timer's goroutine, counted in s.tasks so the session waits for it.
func (s *Session) refresh() {
	if !s.tasks.Add() {
		return
	}
	defer s.tasks.Done()
	token := s.upstreamCredential()
	if token == "" {
		return
	}
	conv, err := s.m.up.RefreshToken(s.ctx, token)
	s.m.cfg.Observer.TokenRefreshed(err)
	var apiErr *upstream.APIError
	switch {
	case err == nil && conv.Token != "":
		s.lg().Debug().Int("expires_in", conv.ExpiresIn).Msg("upstream token refreshed")
		s.m.markVerified(s.id, conv.Token)
		s.addCredential(conv.Token, s.refreshTime(conv.ExpiresIn))
	case errors.As(err, &apiErr) && apiErr.Terminal():
		// Too late (the process slept through the window, say): fall
		// back on another credential a subscriber proved.
		s.lg().Info().Int("status", apiErr.Status).Str("code", apiErr.Code).Msg("upstream token refresh refused; using another credential")
		s.dropCredential(token)
	case errors.Is(err, context.Canceled):
	default:
		s.lg().Info().Err(err).Msg("upstream token refresh failed; will retry")
		s.mu.Lock()
		if !s.stopped {
			s.refreshTimer = time.AfterFunc(refreshRetry, s.refresh)
		}
		s.mu.Unlock()
	}
}

// refreshRetry is the pause after a refresh that failed for a passing
// reason.
const refreshRetry = 30 * time.Second
