package session

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/dlsse/dlsse/internal/inbox"
	"github.com/dlsse/dlsse/internal/netwatch"
	"github.com/dlsse/dlsse/upstream"
)

// ErrClosed reports a Manager that is shutting down.
var ErrClosed = errors.New("session: manager closed")

// ErrEnded reports a conversation that ended (endOfConversation): there is
// nothing more to stream.
var ErrEnded = errors.New("session: conversation ended")

// endedTTL is how long an ended conversation is remembered, so clients
// reconnecting after the end are told so instead of opening it again.
const endedTTL = 10 * time.Minute

// Offer is the stream URL of a start answer the gateway got from Direct
// Line on a client's behalf. The session that opens the conversation's
// stream uses it instead of asking again, while it is fresh. It replays the
// conversation from its beginning. (A reconnect answer makes no offer: its
// watermark is the client's, and a session never starts where a client
// says.)
type Offer struct {
	StreamURL string
	// Credentials Direct Line accepted for this conversation in the call
	// that produced the URL: the client's and the token it answered with.
	Credentials []string
	At          time.Time
	// Token and ExpiresIn are the token Direct Line answered with and its
	// lifetime in seconds, so a session using it can refresh it in time.
	Token     string
	ExpiresIn int
}

// Request asks to subscribe to a conversation.
type Request struct {
	ConversationID string
	// Credential is the secret or token the subscriber presented.
	Credential string
	// Cursor to resume after; nil means from now on.
	Cursor *Cursor
	// Wire is how the stream is encoded.
	Wire Wire
}

// Manager owns the sessions of this process: at most one per conversation.
type Manager struct {
	cfg        Config
	up         DirectLine
	shared     Shared
	clustered  bool       // sharing with other replicas
	reconnects *callLimit // shared by every session's reconnects
	// news carries what a replica tells the others on behalf of a REST
	// call (who posted, a token refresh), in order, off the call's path:
	// a slow or unreachable Redis never holds a client's request.
	news     *inbox.Inbox[func()]
	verifier *verifier
	senders  senders       // who posted as a client, per conversation
	watchers netwatch.Lazy // tells the sessions' streams they have something (reading.go)

	ctx    context.Context // parent of every session
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	sessions map[string]*Session
	offers   map[string]Offer
	ended    map[string]time.Time // conversation -> when it ended
}

// DirectLine is what sessions ask of Direct Line (an upstream.Client).
type DirectLine interface {
	Reconnect(ctx context.Context, credential, conversationID, watermark string) (upstream.Conversation, error)
	Activities(ctx context.Context, credential, conversationID, watermark string) (upstream.ActivitySet, error)
	RefreshToken(ctx context.Context, token string) (upstream.Conversation, error)
	Dial(ctx context.Context, streamURL string) (*upstream.Stream, error)
}

var _ DirectLine = (*upstream.Client)(nil)

// NewManager returns a Manager that reaches Direct Line through up and
// shares conversations with other replicas through cfg.Shared (with
// nobody when it is zero).
func NewManager(up DirectLine, cfg Config) *Manager {
	cfg.setDefaults()
	clustered := cfg.Shared.Leases != nil
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		cfg:        cfg,
		up:         up,
		shared:     cfg.Shared,
		clustered:  clustered,
		news:       inbox.New(func(f func()) { f() }),
		reconnects: newCallLimit(cfg.ReconnectRate, cfg.ReconnectBurst),
		verifier:   newVerifier(ctx, up, &cfg),
		senders:    newSenders(),
		ctx:        ctx,
		cancel:     cancel,
		sessions:   make(map[string]*Session),
		offers:     make(map[string]Offer),
		ended:      make(map[string]time.Time),
	}
}

// markEnded remembers that a conversation ended.
func (m *Manager) markEnded(conversationID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ended[conversationID] = time.Now()
}

// Offer records a start answer's stream URL and the credentials Direct
// Line just accepted for the conversation.
func (m *Manager) Offer(conversationID string, o Offer) {
	if o.At.IsZero() {
		o.At = time.Now()
	}
	m.Accepted(conversationID, o.At, o.Credentials...)
	m.LearnToken(o.Token, o.ExpiresIn)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked(o.At)
	if o.StreamURL != "" {
		m.offers[conversationID] = o
	}
}

// Accepted records credentials Direct Line accepted for a conversation at
// time at (in a start or reconnect call a client made through dlsse), so
// that streams presenting them need not ask again.
func (m *Manager) Accepted(conversationID string, at time.Time, credentials ...string) {
	for _, c := range credentials {
		if c != "" {
			m.verifier.accept(conversationID, c, at)
		}
	}
}

// LearnToken records a token's lifetime (expires_in seconds from now) as
// a Direct Line answer told it: a stream reading with that token ends when
// it expires, unless a refresh through dlsse carried it along.
func (m *Manager) LearnToken(token string, expiresIn int) {
	m.verifier.learnExpiry(token, expiresIn)
}

// pruneLocked drops expired offers and ended marks. It runs on every Offer,
// so both maps stay as small as the recent traffic.
func (m *Manager) pruneLocked(now time.Time) {
	for id, o := range m.offers {
		if now.Sub(o.At) > m.cfg.StreamURLWindow {
			delete(m.offers, id)
		}
	}
	for id, at := range m.ended {
		if now.Sub(at) > endedTTL {
			delete(m.ended, id)
		}
	}
}

// takeOfferLocked returns the conversation's offer if it is still fresh
// and was made to this credential, and forgets it: a stream URL is used
// once.
func (m *Manager) takeOfferLocked(conversationID, credential string) (Offer, bool) {
	o, ok := m.offers[conversationID]
	if !ok {
		return Offer{}, false
	}
	if time.Since(o.At) > m.cfg.StreamURLWindow-streamURLMargin {
		delete(m.offers, conversationID)
		return Offer{}, false
	}
	for _, c := range o.Credentials {
		if c != "" && c == credential {
			delete(m.offers, conversationID)
			return o, true
		}
	}
	return Offer{}, false // not theirs to spend
}

// Verify returns nil when Direct Line accepts credential for the
// conversation: from what is known (a start or reconnect answer, an earlier
// check within VerifyTTL, a refusal within a few seconds) or by asking it.
// Only one question per (conversation, credential) is in flight, and
// questions about credentials nobody vouched for are limited to VerifyRate
// a second. Errors: *upstream.APIError when Direct Line refused, an error
// matching ErrUnavailable when it cannot be asked now.
//
// Streams are verified before they take a slot or open a session, so a
// stranger's garbage costs neither.
func (m *Manager) Verify(ctx context.Context, conversationID, credential string) error {
	wm := ""
	if s := m.Session(conversationID); s != nil {
		wm = s.log.Watermark() // the cheapest read: what came since
	}
	return m.verifier.verify(ctx, conversationID, credential, wm, false)
}

func (m *Manager) isVerified(conversationID, credential string) bool {
	return m.verifier.isAccepted(conversationID, credential)
}

func (m *Manager) markVerified(conversationID, credential string) {
	m.verifier.accept(conversationID, credential, time.Now())
}

// Subscribe attaches a subscriber to a conversation, opening its session
// when none is open. The credential is verified for the conversation
// before anything of it is shared. Errors: *upstream.APIError when Direct
// Line refused the credential or the conversation, ErrUnavailable when
// Direct Line could not be asked, ErrClosed during shutdown.
func (m *Manager) Subscribe(ctx context.Context, req Request) (*Subscriber, error) {
	for range 3 { // a session may retire between lookup and attach
		s, err := m.acquire(req)
		if err != nil {
			return nil, err
		}
		sub, err := s.subscribe(ctx, req)
		if errors.Is(err, errRetired) {
			continue
		}
		return sub, err
	}
	return nil, ErrUnavailable
}

// acquire finds the conversation's session or creates it, and registers the
// caller as waiting so the session is not retired under it.
func (m *Manager) acquire(req Request) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if at, ok := m.ended[req.ConversationID]; ok && time.Since(at) < endedTTL {
		return nil, ErrEnded
	}
	s := m.sessions[req.ConversationID]
	if s == nil {
		offer, hasOffer := m.takeOfferLocked(req.ConversationID, req.Credential)
		s = newSession(m, req, offer, hasOffer)
		m.sessions[req.ConversationID] = s
		m.wg.Add(1)
		go s.run()
	}
	s.mu.Lock()
	s.waiting++
	s.mu.Unlock()
	return s, nil
}

// retire removes s if it is idle (or must go regardless) and stops it.
// It reports whether s was retired.
func (m *Manager) retire(s *Session, force bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired {
		return true
	}
	if !force && (len(s.subs) > 0 || s.waiting > 0) {
		return false
	}
	s.retired = true
	if m.sessions[s.id] == s {
		delete(m.sessions, s.id)
	}
	s.cancel()
	return true
}

// Healthy reports whether what this replica shares with the others can be
// reached (always, alone).
func (m *Manager) Healthy() bool {
	return m.shared.Healthy == nil || m.shared.Healthy()
}

// Clustered reports whether this replica shares conversations with others.
func (m *Manager) Clustered() bool { return m.clustered }

// Sessions is the number of open sessions.
func (m *Manager) Sessions() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// Position is where a conversation stands now for this replica, when it
// has a session for it: the cursor a stream that must start "now" resumes
// from, so that it starts at the moment this was asked, not at the later
// moment it subscribes.
func (m *Manager) Position(conversationID string) (Cursor, bool) {
	s := m.Session(conversationID)
	if s == nil {
		return Cursor{}, false
	}
	_, here := s.log.Position()
	return here, true
}

// Session returns the open session of a conversation, or nil.
func (m *Manager) Session(conversationID string) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessions[conversationID]
}

// Close stops every session and waits for their goroutines, or for ctx.
// It is idempotent. Subscribers still attached see their sessions end.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	done := make(chan struct{})
	go func() { m.wg.Wait(); m.news.Stop(); m.watchers.Close(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tell publishes m about a conversation to the other replicas, in the
// background (m.news), best effort: what does not arrive is logged.
func (m *Manager) tell(conversationID string, msg Message) {
	m.news.Put(func() {
		ctx, cancel := context.WithTimeout(m.ctx, leaseCallTimeout)
		defer cancel()
		if err := m.shared.Bus.Publish(ctx, conversationID, m.cfg.Replica, msg); err != nil && m.ctx.Err() == nil {
			m.cfg.Logger.Warn().Err(err).Str("conversation_id", conversationID).Msg("could not tell the other replicas")
		}
	})
}
