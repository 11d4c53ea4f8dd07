package session

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	"github.com/dlsse/dlsse/upstream"
)

// Bounds of what the verifier remembers.
const (
	// refusalTTL: a credential Direct Line refused is refused again
	// without asking for this long. Short, since nothing a client holds
	// turns valid, but a flood of the same garbage costs one call.
	refusalTTL = 10 * time.Second
	// maxRefusals bounds the refusals kept. They are evicted among
	// themselves: garbage never pushes out a credential that was accepted.
	maxRefusals = 10_000
	// maxExpiries bounds the token lifetimes kept. Only Direct Line's
	// answers add one.
	maxExpiries = 200_000
	// pruneEvery is how many additions pass between prunes.
	pruneEvery = 256
)

// errVerifyBusy: more unknown credentials to check than verify_rate allows
// right now. The stream is told to come back, like when Direct Line is
// unavailable.
var errVerifyBusy = errors.New("session: too many credentials to verify right now")

// verifier decides whether Direct Line accepts a credential for a
// conversation, asking it (an authorised read) only when nothing known
// answers: accepted credentials are trusted for VerifyTTL, refusals are
// remembered for refusalTTL, one question per (conversation, credential)
// is in flight however many streams ask, and questions about credentials
// nobody vouched for are rate-limited. It also keeps what Direct Line told
// of token lifetimes, so streams end when their token does.
type verifier struct {
	up    DirectLine
	ttl   time.Duration
	limit *callLimit
	ctx   context.Context // the Manager's: a question outlives the stream that asked it

	mu       sync.Mutex
	accepted map[[32]byte]time.Time // credentialKey -> trusted until
	refused  map[[32]byte]refusal
	inflight map[[32]byte]*verification
	expiry   map[[32]byte]time.Time // tokenKey -> when Direct Line said the token expires
	adds     int
}

type refusal struct {
	err   upstream.APIError
	until time.Time
}

// verification is one question to Direct Line; done closes when err is set.
type verification struct {
	done chan struct{}
	err  error
}

func newVerifier(ctx context.Context, up DirectLine, cfg *Config) *verifier {
	return &verifier{
		up:       up,
		ttl:      cfg.VerifyTTL,
		limit:    newCallLimit(cfg.VerifyRate, cfg.VerifyBurst),
		ctx:      ctx,
		accepted: make(map[[32]byte]time.Time),
		refused:  make(map[[32]byte]refusal),
		inflight: make(map[[32]byte]*verification),
		expiry:   make(map[[32]byte]time.Time),
	}
}

// credentialKey is how a credential is remembered for a conversation:
// hashed, never kept in clear outside the session that uses it.
func credentialKey(conversationID, credential string) [32]byte {
	h := sha256.New()
	h.Write([]byte(conversationID))
	h.Write([]byte{0})
	h.Write([]byte(credential))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// tokenKey is how a token's lifetime is remembered.
func tokenKey(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// verify returns nil when Direct Line accepts credential for the
// conversation, its refusal (*upstream.APIError) when it does not, and
// ErrUnavailable when it cannot be asked now. watermark makes the
// authorised read cheap (only what came after it). force skips what is
// known (a stream being re-checked) and the rate limit (only credentials
// already accepted are re-checked).
func (v *verifier) verify(ctx context.Context, conversationID, credential, watermark string, force bool) error {
	key := credentialKey(conversationID, credential)
	now := time.Now()
	v.mu.Lock()
	if !force {
		if until, ok := v.accepted[key]; ok && now.Before(until) {
			v.mu.Unlock()
			return nil
		}
		if r, ok := v.refused[key]; ok && now.Before(r.until) {
			v.mu.Unlock()
			err := r.err
			return &err
		}
	}
	call, asking := v.inflight[key]
	if !asking {
		if !force && !v.limit.allow() {
			v.mu.Unlock()
			return errors.Join(ErrUnavailable, errVerifyBusy)
		}
		call = &verification{done: make(chan struct{})}
		v.inflight[key] = call
	}
	v.mu.Unlock()
	if !asking {
		// The first asker asks, bounded by the client's request
		// timeout and the Manager's life rather than by its own ctx:
		// the others wait for this answer.
		_, err := v.up.Activities(v.ctx, credential, conversationID, watermark)
		v.settle(key, call, err)
	}
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// settle records a question's answer and wakes whoever waits for it.
func (v *verifier) settle(key [32]byte, call *verification, err error) {
	now := time.Now()
	v.mu.Lock()
	delete(v.inflight, key)
	var apiErr *upstream.APIError
	switch {
	case err == nil:
		v.accepted[key] = now.Add(v.ttl)
		v.addedLocked(now)
	case errors.As(err, &apiErr) && apiErr.Terminal():
		if len(v.refused) >= maxRefusals {
			v.pruneLocked(now)
		}
		for k := range v.refused { // still full: any refusal may go
			if len(v.refused) < maxRefusals {
				break
			}
			delete(v.refused, k)
		}
		v.refused[key] = refusal{err: *apiErr, until: now.Add(refusalTTL)}
	}
	v.mu.Unlock()
	if err != nil {
		call.err = classify(err)
	}
	close(call.done)
}

// accept records that Direct Line accepted credential for the
// conversation (in a call made for another purpose).
func (v *verifier) accept(conversationID, credential string, at time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	key := credentialKey(conversationID, credential)
	v.accepted[key] = at.Add(v.ttl)
	delete(v.refused, key)
	v.addedLocked(at)
}

// isAccepted reports whether credential is trusted for the conversation
// without asking.
func (v *verifier) isAccepted(conversationID, credential string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	until, ok := v.accepted[credentialKey(conversationID, credential)]
	return ok && time.Now().Before(until)
}

// learnExpiry records a token's lifetime as Direct Line told it
// (expires_in, in seconds, from now).
func (v *verifier) learnExpiry(token string, expiresIn int) {
	if token == "" || expiresIn <= 0 {
		return
	}
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.expiry) >= maxExpiries {
		v.pruneLocked(now)
		if len(v.expiry) >= maxExpiries {
			return // the oldest knowledge stays; a stream without it is re-checked instead
		}
	}
	v.expiry[tokenKey(token)] = now.Add(time.Duration(expiresIn) * time.Second)
	v.addedLocked(now)
}

// expiryOf is when credential expires, zero when Direct Line never said
// (a secret, or a token dlsse saw no answer about).
func (v *verifier) expiryOf(credential string) time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.expiry[tokenKey(credential)]
}

// addedLocked prunes every pruneEvery additions, so the maps stay as large
// as what is current.
func (v *verifier) addedLocked(now time.Time) {
	if v.adds++; v.adds%pruneEvery == 0 {
		v.pruneLocked(now)
	}
}

func (v *verifier) pruneLocked(now time.Time) {
	for k, until := range v.accepted {
		if now.After(until) {
			delete(v.accepted, k)
		}
	}
	for k, r := range v.refused {
		if now.After(r.until) {
			delete(v.refused, k)
		}
	}
	for k, exp := range v.expiry {
		if now.After(exp) {
			delete(v.expiry, k)
		}
	}
}
