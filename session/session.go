package session

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/dlsse/dlsse/internal/tasks"
	"github.com/dlsse/dlsse/internal/turn"
	"github.com/dlsse/dlsse/sse"
	"github.com/dlsse/dlsse/upstream"
)

// ErrUnavailable reports that Direct Line could not be asked (breaker open,
// network, 5xx): the subscriber should come back later.
var ErrUnavailable = errors.New("session: upstream unavailable")

// errRetired is internal: the session went away before the subscriber
// could attach; the Manager tries again with a new one.
var errRetired = errors.New("session: retired")

// Session is one conversation on this replica: its replay log and
// subscribers, and, while it owns the conversation, its upstream stream.
type Session struct {
	id  string
	m   *Manager
	log *memLog

	ctx    context.Context
	cancel context.CancelFunc

	// Fan-out (fanout.go): its state, the pass bound once, the
	// subscribers the running pass writes and the log's head when it
	// began; publishers wait on passEnd for the pass to end (passGen).
	fan      turn.Turn
	passFn   func()
	passSubs []*Subscriber
	passHead atomic.Uint64
	passMu   sync.Mutex
	passEnd  sync.Cond
	passGen  uint64

	// Ownership (owner.go): the tenure, if any, and what seeks the next.
	own        sync.Mutex
	owner      *ownership
	leaseTimer *time.Timer
	unfollow   func() // stops following the bus (follow.go)
	finished   bool   // finish was called, or is about to be

	// applyMu orders writes to the log, which come from the owner's
	// ingest, the bus and repairs; journalPos (under it) is the last
	// journal record the log holds.
	applyMu    sync.Mutex
	journalPos Position
	baselined  bool // the journal gave the log its starting point

	// Owned by the run goroutine.
	firstCredential string // the creator's: what readiness speaks for
	lastCredential  string // what the last upstream call used
	offer           Offer
	hasOffer        bool
	fromBeginning   bool     // the log starts at the conversation's beginning
	enders          []string // senders of endOfConversation activities, not marked as users

	ready     chan struct{} // closed once the credential was accepted, or refused
	readyErr  error
	readyOnce sync.Once

	tasks tasks.Group // short-lived goroutines (token refresh) the session waits for

	mu           sync.Mutex
	creds        []credential // proven credentials, newest first; never logged
	refreshTimer *time.Timer
	stopped      bool          // run has ended: schedule nothing more
	subs         []*Subscriber // each knows its index (Subscriber.idx)
	access       []keyedAccess // what subscribers read with, by tokenKey
	waiting      int           // subscribers between acquire and attach
	retired      bool
	status       Status
	statusVer    uint64
	statusSeen   atomic.Uint64 // statusVer, for subscribers to check without the lock
	statusJSON   []byte
	over         bool        // the session ended for good; subscribers end too
	overSeen     atomic.Bool // over, for subscribers to check without the lock
	overErr      error       // why, for subscribers that arrive after
	terminal     sse.Event   // what they write last (nil: nothing more)
	idleTimer    *time.Timer
}

// lg returns the session's logger, made at each call: a logger carrying
// the conversation id costs half a kilobyte, which every idle session
// would keep for the few lines it ever logs.
func (s *Session) lg() *zerolog.Logger {
	l := s.m.cfg.Logger.With().Str("conversation_id", s.id).Logger()
	return &l
}

func newSession(m *Manager, req Request, offer Offer, hasOffer bool) *Session {
	ctx, cancel := context.WithCancel(m.ctx)
	s := &Session{
		id:              req.ConversationID,
		m:               m,
		ctx:             ctx,
		cancel:          cancel,
		firstCredential: req.Credential,
		creds:           []credential{{value: req.Credential}},
		offer:           offer,
		hasOffer:        hasOffer,
		ready:           make(chan struct{}),
	}
	s.passFn = s.pass
	s.passEnd.L = &s.passMu
	// A session starts where Direct Line vouches for: a start answer's
	// beginning, or "now" (a poll first). Never at a client's cursor or
	// watermark: one from the future, or from another conversation, would
	// put the log where the conversation never gets, and the socket would
	// reconnect from there. A subscriber's cursor is served by its own
	// catch-up.
	s.fromBeginning = hasOffer
	if hasOffer && offer.Token == req.Credential {
		s.creds[0].refreshAt = s.refreshTime(offer.ExpiresIn)
	}
	s.log = newMemLog(m.cfg.ReplayBuffer, "")
	s.setStatusLocked(Status{State: StateConnecting})
	return s
}

// ID is the conversation id.
func (s *Session) ID() string { return s.id }

// markReady records the outcome of the first upstream call made with the
// session's credential (or the first answer that gave the log its start).
// The first call counts.
func (s *Session) markReady(err error) {
	s.readyOnce.Do(func() {
		s.readyErr = err
		if err == nil {
			s.m.markVerified(s.id, s.firstCredential)
		}
		close(s.ready)
	})
}

// subscribe waits for the session to be usable, verifies the credential
// and attaches a subscriber. The caller was counted in s.waiting.
func (s *Session) subscribe(ctx context.Context, req Request) (*Subscriber, error) {
	attached := false
	defer func() {
		if !attached {
			s.mu.Lock()
			s.waiting--
			s.mu.Unlock()
			s.scheduleIdle()
		}
	}()
	// ready always closes: run closes it on its way out at the latest.
	// (Not s.ctx: a session retires just before it tells its waiters why.)
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if s.readyErr != nil {
		if req.Credential != s.firstCredential {
			// The creator's credential failed, not ours: ours gets
			// a session of its own rather than someone else's verdict.
			return nil, errRetired
		}
		return nil, s.readyErr // keeps the breaker's next-try time, if any
	}
	if err := s.verify(ctx, req.Credential); err != nil {
		return nil, err
	}
	sub := newSubscriber(s, req.Cursor, req.Wire)
	if sub.pos == 0 {
		// The log cannot serve the cursor: fetch what it misses now,
		// so that a cursor Direct Line does not know is refused (400)
		// before the stream is answered.
		if err := sub.catchUp(ctx); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	if s.over && s.overErr != nil {
		s.mu.Unlock()
		return nil, s.overErr
	}
	if s.over {
		s.mu.Unlock()
		return nil, errRetired
	}
	if s.retired {
		s.mu.Unlock()
		return nil, errRetired
	}
	s.waiting--
	attached = true
	sub.acc = s.grantLocked(req.Credential)
	sub.idx = len(s.subs)
	s.subs = append(s.subs, sub)
	s.addCredentialLocked(req.Credential, time.Time{})
	if s.idleTimer != nil {
		s.idleTimer.Stop()
	}
	s.mu.Unlock()
	return sub, nil
}

// verify checks that Direct Line accepts credential for this conversation:
// a token minted for another conversation must never read this one.
// Accepted credentials are remembered (hashed) for VerifyTTL.
func (s *Session) verify(ctx context.Context, credential string) error {
	// No shortcut for the session's own credential: it may have expired
	// since. Its acceptance is cached like any other.
	return s.m.verifier.verify(ctx, s.id, credential, s.log.Watermark(), false)
}

// classify maps an upstream error to what a subscriber is told: Direct
// Line's refusal as is, everything else as unavailable.
func classify(err error) error {
	var apiErr *upstream.APIError
	if errors.As(err, &apiErr) && apiErr.Terminal() {
		return apiErr
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return errors.Join(ErrUnavailable, err)
}

// detach removes a subscriber; the last one leaving starts the idle grace.
func (s *Session) detach(sub *Subscriber) {
	s.mu.Lock()
	if i := sub.idx; i >= 0 && i < len(s.subs) && s.subs[i] == sub {
		last := len(s.subs) - 1
		moved := s.subs[last]
		s.subs[i], moved.idx = moved, i
		s.subs[last] = nil
		s.subs = s.subs[:last]
		sub.idx = -1
	}
	s.releaseLocked(sub.acc)
	s.mu.Unlock()
	s.scheduleIdle()
}

// scheduleIdle arms the idle timer when nobody is attached or waiting.
func (s *Session) scheduleIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired || len(s.subs) > 0 || s.waiting > 0 {
		return
	}
	if s.idleTimer == nil {
		s.idleTimer = time.AfterFunc(s.m.cfg.IdleGrace, func() {
			if s.m.retire(s, false) {
				s.lg().Debug().Msg("session idle, closed")
			}
		})
		return
	}
	s.idleTimer.Reset(s.m.cfg.IdleGrace)
}

// Subscribers is the number of attached subscribers.
func (s *Session) Subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// endWith retires the session and makes every subscriber write ev (if any)
// and end. err is what a subscriber arriving meanwhile is told.
func (s *Session) endWith(err error, ev sse.Event) {
	s.mu.Lock()
	if !s.over {
		s.over, s.overErr, s.terminal = true, err, ev
		s.overSeen.Store(true)
	}
	s.mu.Unlock()
	s.m.retire(s, true) // first, so no new subscriber finds it
	s.notify()
}
