package session

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/dlsse/dlsse/upstream"
)

// run starts the session: it follows what other replicas say about the
// conversation (when there are any), loads what their journal holds, and
// seeks the lease that makes it the owner of the conversation's Direct
// Line socket.
//
// An owner's life on upstream is a chain of goroutines, one at a time,
// never two (the "run goroutine" the rest of the package speaks of):
// connect does the deep work (REST calls, the dial) and hands a connected
// stream to the watcher (reading.go), which starts a goroutine whenever
// the socket has something, for as long as it has; the one that finds
// the stream dropped carries on with the reconnect. A session on a
// healthy, quiet stream thus holds no goroutine, owner or follower. The
// chain lasts as long as the tenure (owner.go).
func (s *Session) run() {
	s.m.cfg.Observer.SessionOpened()
	context.AfterFunc(s.ctx, s.onDone)
	if s.m.clustered {
		s.follow()
		if !s.hasOffer { // a fresh start has nothing in the journal yet
			s.loadJournal()
		}
	}
	s.seekLease()
}

// finish ends the session: what run's caller is owed once it is over, in
// this order. It runs once, on whichever goroutine saw the end last: the
// chain's, or the one that retired a follower.
func (s *Session) finish() {
	s.markReady(errRetired) // unblocks waiters if the session ends before ready
	s.stop()
	s.m.cfg.Observer.SessionClosed()
	s.m.wg.Done()
}

// connect opens the upstream stream, retrying per the verdict and backoff
// (attempt counts failures so far), then has it read (attach) and
// returns. It ends the tenure when it gives up.
func (s *Session) connect(o *ownership, attempt int) {
	for {
		stream, err := s.open(o)
		if err != nil {
			if o.ctx.Err() != nil {
				s.tenureEnded(o)
				return
			}
			if errors.Is(err, ErrNotOwner) {
				s.m.cfg.Observer.Ownership(OwnershipFenced)
				s.stepBack(o, "journal refused an append (fenced)")
				s.tenureEnded(o)
				return
			}
			switch s.verdict(err) {
			case stop:
				s.tenureEnded(o)
				return
			case retryNow:
				continue
			}
			if !s.pause(o, &attempt, err, "upstream stream not open") {
				s.tenureEnded(o)
				return
			}
			continue
		}
		s.m.cfg.Observer.UpstreamConnected()
		s.setStatus(Status{State: StateOnline})
		s.attach(o, stream, attempt)
		return
	}
}

// streamEnded decides, once stream r dropped with err: end, give the
// conversation up, or reconnect (on this goroutine, which then ends).
func (s *Session) streamEnded(r *reading, err error) {
	o, attempt, opened := r.o, r.attempt, r.opened
	r.unwatchCtx()
	_ = r.stream.Close()
	s.m.cfg.Observer.UpstreamDisconnected()
	if o.ctx.Err() != nil {
		s.tenureEnded(o)
		return
	}
	if time.Since(opened) >= s.m.cfg.StableAfter {
		attempt = 0
	}
	switch {
	case errors.Is(err, ErrNotOwner):
		// The journal refused what this replica read: the lease is
		// somebody else's now.
		s.m.cfg.Observer.Ownership(OwnershipFenced)
		s.stepBack(o, "journal refused an append (fenced)")
		s.tenureEnded(o)
		return
	case s.botEnded(o.ctx):
		st := Status{State: StateEnded, Reason: "the conversation ended"}
		s.setStatus(st)
		s.announce(o, Message{Kind: KindEnded, Status: st})
		s.m.markEnded(s.id)
		s.endWith(ErrEnded, nil)
		s.tenureEnded(o)
		return
	case upstream.IsCollision(err) && s.m.clustered && !s.stillOwner(o):
		// Another replica holds the lease and the socket: never
		// reconnect against it.
		s.stepBack(o, "collision: another replica owns the conversation")
		s.tenureEnded(o)
		return
	case upstream.IsCollision(err) && s.m.retire(s, false):
		// Someone else holds the conversation's socket and nobody here
		// is listening (nor about to): let them have it.
		s.lg().Info().Msg("upstream stream taken over elsewhere (collision), session closed")
		s.tenureEnded(o)
		return
	}
	s.m.cfg.Observer.Reconnect(dropReason(err))
	if errors.Is(err, upstream.ErrMessageTooLarge) {
		// Reconnecting would replay the same oversized message forever:
		// poll past it first.
		s.pollPast(o, err)
	}
	if !s.pause(o, &attempt, err, "upstream stream dropped") {
		s.tenureEnded(o)
		return
	}
	s.connect(o, attempt)
}

// stillOwner asks whether tenure o still holds the lease, by renewing it.
func (s *Session) stillOwner(o *ownership) bool {
	ctx, cancel := context.WithTimeout(o.ctx, leaseCallTimeout)
	defer cancel()
	return s.m.shared.Leases.Renew(ctx, o.lease, s.m.cfg.LeaseTTL) == nil
}

// stop ends what the session scheduled besides run, and waits for it.
func (s *Session) stop() {
	s.mu.Lock()
	s.stopped = true
	if s.refreshTimer != nil {
		s.refreshTimer.Stop()
	}
	s.stopAccessLocked()
	s.mu.Unlock()
	s.own.Lock()
	if s.leaseTimer != nil {
		s.leaseTimer.Stop()
	}
	unfollow := s.unfollow
	s.own.Unlock()
	s.tasks.Close()
	_ = s.tasks.Wait(context.Background()) // cannot fail: no deadline
	if unfollow != nil {
		unfollow()
	}
}

// pollPast fetches by REST what an oversized stream message held, so the
// next socket starts after it.
func (s *Session) pollPast(o *ownership, cause error) {
	s.lastCredential = s.upstreamCredential()
	set, err := s.m.up.Activities(o.ctx, s.lastCredential, s.id, s.log.Watermark())
	if err != nil {
		s.lg().Info().Err(err).Msg("polling past an oversized stream message failed; will retry")
		return
	}
	s.lg().Warn().Err(cause).Int("activities", len(set.Activities)).Msg("stream message above the read limit; polled instead")
	if err := s.ingest(o, set); err != nil {
		s.lg().Info().Err(err).Msg("what was polled past an oversized message could not be shared; will retry")
	}
}

// dropReason names why an open stream ended, for metrics.
func dropReason(err error) ReconnectReason {
	var ce *upstream.ClosedError
	var ne net.Error
	switch {
	case upstream.IsCollision(err):
		return ReconnectCollision
	case errors.As(err, &ce):
		return ReconnectClosed
	case errors.As(err, &ne) && ne.Timeout():
		return ReconnectStalled
	case errors.Is(err, upstream.ErrMessageTooLarge):
		return ReconnectTooLarge
	default:
		return ReconnectLost
	}
}

// pause tells subscribers the session is reconnecting and waits out the
// backoff for this attempt: until the breaker lets a probe through when it
// is open (spread, so sessions do not probe together), the exponential
// jittered delay otherwise; then its turn at the process-wide reconnect
// limit. It returns false when the session was stopped meanwhile.
func (s *Session) pause(o *ownership, attempt *int, err error, what string) bool {
	state := StateReconnecting
	var wait time.Duration
	var ue *upstream.UnavailableError
	if errors.As(err, &ue) {
		state = StateUnavailable
		wait = ue.RetryIn + rand.N(min(s.m.cfg.BackoffMax, ue.RetryIn+s.m.cfg.BackoffBase)+1)
	} else {
		wait = s.backoff(*attempt, err)
		*attempt++
	}
	s.lg().Info().Err(err).Dur("retry_in", wait).Msg(what)
	s.setStatus(Status{State: state, Reason: reasonText(err), RetryIn: ms(wait)})
	return s.sleep(o.ctx, wait) && s.awaitReconnectTurn(o.ctx)
}

// What the loop does after an attempt to open the stream failed.
type nextStep int

const (
	backOff  nextStep = iota // wait, then try again
	retryNow                 // another credential is left: try it at once
	stop                     // the session is over
)

// verdict decides what a failure to open the stream means. A refusal of
// the credential falls back on another credential the session holds; with
// none left, or for an unknown conversation, the session ends and its
// subscribers get the refusal as an error event (new subscribers get its
// status). Any failure before a credential was ever accepted ends it too:
// nobody verified may keep a session alive.
func (s *Session) verdict(err error) nextStep {
	select {
	case <-s.ready:
	default:
		// Retire first: a waiter told to try again must not find this
		// session still registered.
		s.m.retire(s, true)
		s.markReady(classify(err))
		return stop
	}
	var apiErr *upstream.APIError
	if !errors.As(err, &apiErr) || !apiErr.Terminal() {
		return backOff
	}
	refusal := apiErr.Status == http.StatusUnauthorized || apiErr.Status == http.StatusForbidden
	if refusal && s.dropCredential(s.lastCredential) {
		s.lg().Info().Int("status", apiErr.Status).Str("code", apiErr.Code).Msg("upstream refused a credential; trying another")
		return retryNow
	}
	s.lg().Info().Int("status", apiErr.Status).Str("code", apiErr.Code).Str("detail", apiErr.Message).Msg("upstream refused the conversation, session ended")
	if apiErr.Status == http.StatusNotFound {
		// The conversation is gone for everybody; a refused credential
		// is only this replica's.
		s.announce(s.owning(), Message{Kind: KindEnded, Status: Status{State: StateEnded, Reason: reasonText(err)},
			Terminal: errorEventFor(apiErr)})
	}
	s.endWith(apiErr, errorEventFor(apiErr))
	return stop
}

// open returns a connected upstream stream that continues exactly where
// the log stops.
func (s *Session) open(o *ownership) (*upstream.Stream, error) {
	if err := s.shareLocal(o); err != nil {
		return nil, err
	}
	if s.hasOffer {
		s.hasOffer = false
		s.markReady(nil) // Direct Line accepted the credential when it made the offer
		if time.Since(s.offer.At) < s.m.cfg.StreamURLWindow-streamURLMargin {
			stream, err := s.m.up.Dial(o.ctx, s.offer.StreamURL)
			if err == nil {
				return stream, nil
			}
			s.lg().Info().Err(err).Msg("offered stream URL failed, reconnecting")
		}
	}
	if err := s.ensureWatermark(o.ctx, o); err != nil {
		return nil, err
	}
	s.lastCredential = s.upstreamCredential()
	conv, err := s.m.up.Reconnect(o.ctx, s.lastCredential, s.id, s.log.Watermark())
	if err != nil {
		return nil, err
	}
	s.markReady(nil)
	if conv.Token == s.lastCredential {
		s.learnExpiry(conv.Token, conv.ExpiresIn)
	}
	return s.m.up.Dial(o.ctx, conv.StreamURL)
}

// ensureWatermark makes sure a reconnect can ask for exactly what the log
// lacks. Reconnecting without a watermark means "from now", so a session
// that has none yet polls first: from the beginning when its log starts
// there (everything is appended, duplicates dropped, and an owner, tenure
// o, shares it), or just for the current watermark when the log starts now
// (nothing is appended).
func (s *Session) ensureWatermark(ctx context.Context, o *ownership) error {
	if s.log.Watermark() != "" {
		return nil
	}
	s.lastCredential = s.upstreamCredential()
	set, err := s.m.up.Activities(ctx, s.lastCredential, s.id, "")
	if err != nil {
		return err
	}
	// Ready only once the log says where "now" is, so a subscriber that
	// joins from now gets a cursor naming it.
	defer s.markReady(nil)
	if s.fromBeginning && o != nil {
		return s.ingest(o, set)
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.log.Watermark() != "" {
		return nil // the bus was faster
	}
	if s.fromBeginning {
		entries, wm, _ := s.entriesOf(set)
		markLocal(entries)
		s.log.Append(entries, wm)
		s.m.cfg.Observer.ActivitiesReceived(len(entries))
		s.notify()
		return nil
	}
	if set.Watermark == "" || ValidateWatermark(set.Watermark) != nil {
		// An empty conversation: "now" is its beginning.
		s.fromBeginning = true
		return nil
	}
	s.log.Append(nil, set.Watermark)
	return nil
}

// backoff is the delay before reconnect attempt n: exponential with full
// jitter, so sessions that dropped together do not come back together, and
// never shorter than a Retry-After Direct Line asked for.
func (s *Session) backoff(n int, err error) time.Duration {
	ceiling := s.m.cfg.BackoffBase << min(n, 20)
	if ceiling <= 0 || ceiling > s.m.cfg.BackoffMax {
		ceiling = s.m.cfg.BackoffMax
	}
	d := rand.N(ceiling + 1)
	var apiErr *upstream.APIError
	if errors.As(err, &apiErr) && apiErr.RetryAfter > d {
		d = apiErr.RetryAfter
	}
	return d
}

// sleep waits d or until ctx ends.
func (s *Session) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// reasonText is a human-readable reason for a status event; it never
// contains URLs or credentials.
func reasonText(err error) string {
	var apiErr *upstream.APIError
	var ce *upstream.ClosedError
	switch {
	case err == nil:
		return "upstream closed the stream"
	case errors.Is(err, upstream.ErrUnavailable):
		return "Direct Line unavailable"
	case errors.As(err, &apiErr):
		return "Direct Line answered " + apiErr.Summary()
	case errors.As(err, &ce):
		return "upstream closed the stream"
	default:
		return "upstream connection lost"
	}
}
