package session

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// callLimit spreads a kind of upstream call of every session of a Manager
// over time: reconnects (below) and credential verifications (verify.go).
//
// For reconnects: each session already waits a fully jittered backoff,
// but the jitter window (backoff_base) does not grow with the number of
// sessions: when Direct Line drops every socket at once, 10,000 sessions
// come back within half a second, a thundering herd against the service
// just when it is recovering. A token bucket shared by the process turns
// that into at most Burst at once, then Rate a second; a session that
// drops while the process is calm finds the bucket full and is not
// delayed at all.
type callLimit struct {
	lim *rate.Limiter // nil: no limit

	// Every call into lim goes through mu with a time that never goes
	// back. rate.Limiter sets its clock to the time it is given, even an
	// earlier one, and then counts the interval again for the next caller:
	// with thousands of sessions taking time.Now() before queueing on its
	// lock, a storm of 8,000 reconnects measured 2.5 s faster than the
	// rate allows.
	mu   sync.Mutex
	last time.Time
	now  func() time.Time
}

// at returns the time to give lim: now, or the last one given if now is
// earlier. mu must be held.
func (l *callLimit) at() time.Time {
	t := l.now()
	if t.Before(l.last) {
		t = l.last
	}
	l.last = t
	return t
}

func (l *callLimit) reserve() *rate.Reservation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lim.ReserveN(l.at(), 1)
}

func (l *callLimit) cancel(r *rate.Reservation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r.CancelAt(l.at())
}

// newCallLimit returns a limit of perSecond reconnects with bursts of
// burst; a negative perSecond means no limit. Config.setDefaults has
// replaced zeros.
func newCallLimit(perSecond float64, burst int) *callLimit {
	if perSecond < 0 {
		return &callLimit{}
	}
	return &callLimit{lim: rate.NewLimiter(rate.Limit(perSecond), max(burst, 1)), now: time.Now}
}

// allow takes a call's turn if there is one now, without waiting.
func (l *callLimit) allow() bool {
	if l.lim == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lim.AllowN(l.at(), 1)
}

// wait blocks until the caller may reconnect, or until ctx ends: a
// session being retired or a Manager shutting down never waits for the
// limit. delayed, when not nil, is told the wait before it starts, and
// only when there is one. wait reports whether the caller may go on.
//
// A reservation (not rate.Limiter.Wait) so the delay is known up front;
// one given up because ctx ended hands its token back to the sessions
// still waiting.
func (l *callLimit) wait(ctx context.Context, delayed func(time.Duration)) bool {
	if ctx.Err() != nil {
		return false
	}
	if l.lim == nil {
		return true
	}
	r := l.reserve()
	d := r.Delay()
	if d <= 0 {
		return true
	}
	if delayed != nil {
		delayed(d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		l.cancel(r)
		return false
	}
}

// announceLimitAfter: a session held back by the limit at least this long
// tells its subscribers the new retryIn, so a UI's countdown stays honest;
// shorter waits are not worth an event to every subscriber.
const announceLimitAfter = time.Second

// awaitReconnectTurn is the session's turn at the process-wide reconnect
// limit, taken after its own backoff and before it calls Direct Line
// again. It returns false when the session was stopped meanwhile.
func (s *Session) awaitReconnectTurn(ctx context.Context) bool {
	return s.m.reconnects.wait(ctx, func(d time.Duration) {
		s.m.cfg.Observer.ReconnectDelayed(d)
		if d >= announceLimitAfter {
			st := s.Status()
			st.RetryIn = ms(d)
			s.setStatus(st)
		}
	})
}
