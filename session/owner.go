package session

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Ownership: a session holds its conversation's Direct Line socket only
// while it holds the conversation's lease. It renews the lease every third
// of LeaseTTL and closes the socket when two thirds passed without a
// renewal, before the lease can expire and another replica take over
// (pauses, partitions, Redis gone). Whatever it writes to what replicas
// share goes with its lease (fencing), so an owner that lost it cannot
// append. Without a lease it follows the owner (follow.go) and tries again
// when the lease may have expired, or at once when it was released.

// Timings of lease calls.
const (
	leaseCallTimeout = 5 * time.Second
	leaseRetry       = time.Second           // after a failed call to the store
	releasedJitter   = 50 * time.Millisecond // replicas told of a release do not all ask at once
	// singleLease: a process that shares with nobody holds its leases
	// for good and never renews them.
	singleLease = 100 * 365 * 24 * time.Hour
)

// ownership is one tenure as the conversation's owner. Its ctx ends when
// the tenure does, which ends the chain of goroutines (run.go) that holds
// the socket.
type ownership struct {
	lease    Lease
	ctx      context.Context
	cancel   context.CancelFunc
	renew    *time.Timer // the next renewal
	deadline *time.Timer // the socket's end if renewals keep failing
}

// leaseTTL is how long this process asks to hold a lease.
func (s *Session) leaseTTL() time.Duration {
	if !s.m.clustered {
		return singleLease
	}
	return s.m.cfg.LeaseTTL
}

// maxLeaseJitter bounds the random wait added to a busy lease's expiry.
const maxLeaseJitter = 500 * time.Millisecond

// seekLease tries to become the owner. When another replica is, the
// session follows it and tries again when that lease may run out. It runs
// at the start, on its timer, and when the owner released the lease. A
// single process owns every conversation it has, with no lease to keep.
func (s *Session) seekLease() {
	if !s.tasks.Add() {
		return
	}
	defer s.tasks.Done()
	s.own.Lock()
	busy := s.owner != nil || s.finished || s.ctx.Err() != nil
	s.own.Unlock()
	if busy {
		return
	}
	if !s.m.clustered {
		s.becomeOwner(Lease{Conversation: s.id, Holder: s.m.cfg.Replica})
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, leaseCallTimeout)
	l, left, err := s.m.shared.Leases.Acquire(ctx, s.id, s.m.cfg.Replica, s.leaseTTL())
	cancel()
	switch {
	case err == nil:
		s.becomeOwner(l)
	case errors.Is(err, ErrNotOwner):
		s.m.cfg.Observer.Ownership(OwnershipBusy)
		s.ensureBaseline()
		// When the holder's lease would run out unless it renewed,
		// give or take a little, so the replicas do not all ask at
		// once; the spread is bounded, not a share of the lease: at
		// 15 s a quarter made a dead owner's conversations wait up to
		// 3.75 s more (dlsse-bench -scenario cluster).
		s.retryLeaseIn(left + rand.N(min(left/4, maxLeaseJitter)+time.Millisecond))
	case s.ctx.Err() != nil:
	default:
		s.m.cfg.Observer.Ownership(OwnershipStoreError)
		s.lg().Warn().Err(err).Msg("cannot ask for the conversation's lease; following")
		s.ensureBaseline()
		s.setLocalStatus(Status{State: StateUnavailable, Reason: "the replicas' shared store is unreachable", RetryIn: ms(leaseRetry)})
		s.retryLeaseIn(leaseRetry + rand.N(leaseRetry))
	}
}

// retryLeaseIn arms seekLease.
func (s *Session) retryLeaseIn(d time.Duration) {
	s.own.Lock()
	defer s.own.Unlock()
	if s.finished || s.owner != nil {
		return
	}
	if s.leaseTimer == nil {
		s.leaseTimer = time.AfterFunc(d, s.seekLease)
		return
	}
	s.leaseTimer.Reset(d)
}

// becomeOwner starts a tenure with lease l and the chain that holds the
// socket under it.
func (s *Session) becomeOwner(l Lease) {
	o := &ownership{lease: l}
	if s.m.clustered {
		o.ctx, o.cancel = context.WithCancel(s.ctx)
	} else {
		// Alone, a tenure lasts as long as the session: its context
		// will do (one context less per session).
		o.ctx, o.cancel = s.ctx, func() {}
	}
	s.own.Lock()
	if s.finished || s.ctx.Err() != nil {
		s.own.Unlock()
		o.cancel()
		s.release(l)
		return
	}
	s.owner = o
	if s.m.clustered {
		ttl := s.m.cfg.LeaseTTL
		o.renew = time.AfterFunc(ttl/3, func() { s.renew(o) })
		o.deadline = time.AfterFunc(ttl*2/3, func() { s.stepBack(o, "lease not renewed in time") })
	}
	s.own.Unlock()
	s.m.cfg.Observer.Ownership(OwnershipAcquired)
	if s.m.clustered {
		s.lg().Info().Uint64("fence", uint64(l.Fence)).Msg("owner of the conversation's Direct Line socket")
	}
	go s.connect(o, 0)
}

// renew extends the lease of tenure o. On its timer, counted in s.tasks.
func (s *Session) renew(o *ownership) {
	if !s.tasks.Add() {
		return
	}
	defer s.tasks.Done()
	if o.ctx.Err() != nil {
		return
	}
	ttl := s.m.cfg.LeaseTTL
	ctx, cancel := context.WithTimeout(o.ctx, min(leaseCallTimeout, ttl/3))
	err := s.m.shared.Leases.Renew(ctx, o.lease, ttl)
	cancel()
	switch {
	case err == nil:
		s.m.cfg.Observer.Ownership(OwnershipRenewed)
		o.deadline.Reset(ttl * 2 / 3)
		o.renew.Reset(ttl / 3)
	case errors.Is(err, ErrNotOwner):
		s.m.cfg.Observer.Ownership(OwnershipLost)
		s.stepBack(o, "lease lost")
	case o.ctx.Err() != nil:
	default:
		// The deadline keeps running: renewals that keep failing end
		// the tenure before the lease can expire.
		s.m.cfg.Observer.Ownership(OwnershipRenewFailed)
		s.lg().Warn().Err(err).Msg("lease renewal failed; retrying")
		o.renew.Reset(min(leaseRetry, ttl/6))
	}
}

// stepBack ends tenure o: the chain closes the socket without
// reconnecting, gives the lease up if it still holds it, and the session
// follows.
func (s *Session) stepBack(o *ownership, why string) {
	s.own.Lock()
	current := s.owner == o
	s.own.Unlock()
	if !current || o.ctx.Err() != nil {
		return
	}
	s.lg().Warn().Str("why", why).Msg("stepping back as the conversation's owner: socket closed")
	o.cancel()
}

// tenureEnded is the chain's last step: the tenure is over. The session
// finishes if it is over too, else it follows and seeks the lease again.
func (s *Session) tenureEnded(o *ownership) {
	o.cancel()
	if o.renew != nil {
		o.renew.Stop()
		o.deadline.Stop()
	}
	s.release(o.lease)
	s.m.cfg.Observer.Ownership(OwnershipEnded)
	s.mu.Lock()
	over := s.over
	s.mu.Unlock()
	s.own.Lock()
	s.owner = nil
	done := (s.ctx.Err() != nil || over) && !s.finished
	if done {
		s.finished = true
	}
	s.own.Unlock()
	if done {
		s.finish()
		return
	}
	if s.m.clustered {
		s.lg().Info().Msg("no longer the conversation's owner; following")
	}
	s.retryLeaseIn(s.m.cfg.BackoffBase + rand.N(s.m.cfg.BackoffBase))
}

// release gives a lease up, telling the other replicas so they take over at
// once. It outlives the session's context: a replica that stops hands over.
func (s *Session) release(l Lease) {
	if s.m.clustered {
		ctx, cancel := context.WithTimeout(context.Background(), leaseCallTimeout)
		defer cancel()
		if err := s.m.shared.Leases.Release(ctx, l); err != nil {
			s.lg().Warn().Err(err).Msg("could not release the conversation's lease; it expires by itself")
			return
		}
	}
	s.m.cfg.Observer.Ownership(OwnershipReleased)
}

// owning returns the current tenure, or nil while following.
func (s *Session) owning() *ownership {
	s.own.Lock()
	defer s.own.Unlock()
	return s.owner
}

// onDone runs when the session's context ends: a follower finishes here;
// an owner's chain finishes when it notices.
func (s *Session) onDone() {
	s.own.Lock()
	if s.owner != nil || s.finished {
		s.own.Unlock()
		return
	}
	s.finished = true
	s.own.Unlock()
	s.finish()
}

// The ownership events, for metrics.
type OwnershipEvent string

// Ownership events.
const (
	OwnershipAcquired    OwnershipEvent = "acquired"     // this replica became a conversation's owner
	OwnershipBusy        OwnershipEvent = "busy"         // another replica owns it
	OwnershipRenewed     OwnershipEvent = "renewed"      // a lease renewal succeeded
	OwnershipRenewFailed OwnershipEvent = "renew_failed" // a renewal could not reach the store
	OwnershipLost        OwnershipEvent = "lost"         // the lease was gone at renewal
	OwnershipFenced      OwnershipEvent = "fenced"       // a write was refused: the lease was no longer ours
	OwnershipReleased    OwnershipEvent = "released"     // the lease was given up
	OwnershipEnded       OwnershipEvent = "ended"        // a tenure ended (this replica no longer owns it)
	OwnershipStoreError  OwnershipEvent = "store_error"  // the lease could not be asked for
)

// OwnershipEvents lists every OwnershipEvent, for metrics.
func OwnershipEvents() []OwnershipEvent {
	return []OwnershipEvent{OwnershipAcquired, OwnershipBusy, OwnershipRenewed, OwnershipRenewFailed,
		OwnershipLost, OwnershipFenced, OwnershipReleased, OwnershipEnded, OwnershipStoreError}
}
