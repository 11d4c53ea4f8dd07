// Package session owns conversations: for each one it holds exactly one
// upstream Direct Line stream, tracks the watermark, keeps a bounded replay
// log, reconnects with the stored watermark when the stream drops, and lets
// any number of subscribers read the log at their own pace.
//
// Fan-out is pull-based: a session appends each activity to its Log once,
// encoded once, and has its subscribers' streams written (fanout.go); each
// subscriber copies what it has not yet written from the shared log, and
// its stream writes it with a non-blocking write. Publishing therefore
// never waits for a subscriber, and a subscriber that falls behind costs
// no memory: it either catches up from the log, or from Direct Line when
// the log has moved past it.
//
// Several replicas share conversations through Shared (shared.go): one of
// them, the owner, holds a conversation's Direct Line socket and appends
// what it reads to the shared journal; every replica with subscribers of
// the conversation follows the journal into a replay log of its own, which
// its subscribers read. A single process shares with nobody: it owns every
// conversation it has, with no lease.
package session

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/dlsse/dlsse/internal/defaults"
)

// Defaults for Config's zero values.
const (
	DefaultReplayBuffer    = 1024
	DefaultIdleGrace       = 30 * time.Second
	DefaultStreamURLWindow = 60 * time.Second
	DefaultVerifyTTL       = 30 * time.Second
	DefaultBackoffBase     = 500 * time.Millisecond
	DefaultBackoffMax      = 30 * time.Second
	DefaultStableAfter     = 30 * time.Second
	DefaultMaxBatch        = 64 << 10
	// DefaultReconnectRate is how many reconnects a second the process
	// allows: 10,000 sessions that Direct Line dropped at once come back
	// in about 10 s, not all in the same half second.
	DefaultReconnectRate  = 1000
	DefaultReconnectBurst = 100
	// DefaultVerifyRate bounds what a flood of unknown credentials can
	// cost Direct Line, while a restarted instance still re-admits
	// 10,000 returning streams in about 20 s.
	DefaultVerifyRate  = 500
	DefaultVerifyBurst = 100
	// DefaultReverify: a stream whose credential's lifetime Direct Line
	// never told (a secret, a token dlsse saw no answer about) is
	// re-checked this often, and ends when Direct Line refuses it.
	DefaultReverify = 5 * time.Minute
	// DefaultLeaseTTL is how long a conversation's owner holds it without
	// renewing (as Kubernetes' leader election: 15 s lease, renewed every
	// 5 s, given up 10 s after the last renewal).
	DefaultLeaseTTL = 15 * time.Second
)

// Config tunes a Manager. Every zero value means the default above.
type Config struct {
	// ReplayBuffer is how many entries each conversation's log keeps for
	// resumes and slow readers.
	ReplayBuffer int
	// IdleGrace is how long a session stays open after its last
	// subscriber left, so a reconnecting browser finds it warm.
	IdleGrace time.Duration
	// StreamURLWindow is how long Direct Line accepts a stream URL after
	// issuing it. A URL is used only well inside it (minus 10 s).
	StreamURLWindow time.Duration
	// VerifyTTL is how long a credential that Direct Line accepted for a
	// conversation is trusted without asking again.
	VerifyTTL time.Duration
	// BackoffBase and BackoffMax bound the exponential, fully jittered
	// delay between reconnect attempts.
	BackoffBase, BackoffMax time.Duration
	// StableAfter is how long a stream must stay up before the backoff
	// starts over from BackoffBase.
	StableAfter time.Duration
	// ReconnectRate and ReconnectBurst limit the upstream reconnect
	// attempts (reconnect call and dial) of all sessions together, taken
	// after each session's own backoff: a bucket of ReconnectBurst
	// attempts refilled at ReconnectRate a second. It keeps a fleet-wide
	// drop from turning into a synchronized spike of calls against Direct
	// Line; a lone session that drops finds the bucket full. A negative
	// ReconnectRate means no limit. First connects are not limited.
	ReconnectRate  float64
	ReconnectBurst int
	// VerifyRate and VerifyBurst limit the questions to Direct Line about
	// credentials nobody vouched for (streams opened with a credential no
	// start, reconnect or earlier check accepted), like ReconnectRate. A
	// stream over the limit is told to come back. Negative: no limit.
	VerifyRate  float64
	VerifyBurst int
	// Reverify is how often a stream whose credential's lifetime is
	// unknown is re-checked with Direct Line.
	Reverify time.Duration
	// MaxBatch bounds the bytes a subscriber writes in one go.
	MaxBatch int
	// Shared is what this process shares with other replicas. Zero: a
	// single process, sharing with nobody.
	Shared Shared
	// Replica names this process among the replicas; default random.
	Replica string
	// LeaseTTL is how long an owner holds a conversation without renewing
	// its lease. It renews every third of it, and closes its Direct Line
	// socket when two thirds passed without a renewal, before the lease
	// can expire and another replica take over. Only with Shared.
	LeaseTTL time.Duration
	// Logger receives session logs; conversation_id is on every line.
	Logger zerolog.Logger
	// Observer receives metrics events; nil means none.
	Observer Observer
	// RefreshMargin: an upstream token is refreshed once this fraction of
	// its lifetime is left (Direct Line's own client refreshes at half).
	RefreshMargin float64
}

func (c *Config) setDefaults() {
	defaults.Set(&c.ReplayBuffer, DefaultReplayBuffer)
	defaults.Set(&c.MaxBatch, DefaultMaxBatch)
	defaults.Set(&c.IdleGrace, DefaultIdleGrace)
	defaults.Set(&c.StreamURLWindow, DefaultStreamURLWindow)
	defaults.Set(&c.VerifyTTL, DefaultVerifyTTL)
	defaults.Set(&c.BackoffBase, DefaultBackoffBase)
	defaults.Set(&c.BackoffMax, DefaultBackoffMax)
	defaults.Set(&c.StableAfter, DefaultStableAfter)
	if c.ReconnectRate == 0 { // negative: no limit
		c.ReconnectRate = DefaultReconnectRate
	}
	defaults.Set(&c.ReconnectBurst, DefaultReconnectBurst)
	if c.VerifyRate == 0 { // negative: no limit
		c.VerifyRate = DefaultVerifyRate
	}
	defaults.Set(&c.VerifyBurst, DefaultVerifyBurst)
	defaults.Set(&c.Reverify, DefaultReverify)
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.RefreshMargin <= 0 || c.RefreshMargin >= 1 {
		c.RefreshMargin = 0.5
	}
	defaults.Set(&c.LeaseTTL, DefaultLeaseTTL)
	if c.Replica == "" {
		c.Replica = newEpoch()
	}
}

// streamURLMargin is kept from the stream URL window so a URL is never
// dialled in its last seconds.
const streamURLMargin = 10 * time.Second

// ReconnectReason names why an open upstream stream ended and a reconnect
// began, for metrics.
type ReconnectReason string

// The reconnect reasons.
const (
	ReconnectClosed    ReconnectReason = "closed"    // Direct Line closed the socket
	ReconnectCollision ReconnectReason = "collision" // another socket took the conversation
	ReconnectStalled   ReconnectReason = "stalled"   // no frame or pong for the read timeout
	ReconnectTooLarge  ReconnectReason = "too_large" // a message above the read limit
	ReconnectLost      ReconnectReason = "lost"      // anything else: the connection broke
)

// ReconnectReasons lists every ReconnectReason, so metrics can show each
// before its first event.
func ReconnectReasons() []ReconnectReason {
	return []ReconnectReason{ReconnectClosed, ReconnectCollision, ReconnectStalled, ReconnectTooLarge, ReconnectLost}
}

// Observer is told what sessions do, for metrics. Methods must be fast and
// safe for concurrent use.
type Observer interface {
	SessionOpened()
	SessionClosed()
	UpstreamConnected()
	UpstreamDisconnected()
	// Reconnect: the upstream stream was lost and will be reopened.
	Reconnect(reason ReconnectReason)
	// ReconnectDelayed: a reconnect attempt waits d for its turn at the
	// process-wide reconnect limit (Config.ReconnectRate), on top of its
	// backoff.
	ReconnectDelayed(d time.Duration)
	// ActivitiesReceived counts new activities added to a log.
	ActivitiesReceived(n int)
	// ActivitiesDelivered counts activity events handed to subscribers.
	ActivitiesDelivered(n int)
	// Replay: a resume or a fall-behind served from the log (hit) or
	// fetched from Direct Line (miss).
	Replay(hit bool)
	TokenRefreshed(err error)
	// Ownership: a conversation's lease changed hands, or tried to.
	Ownership(e OwnershipEvent)
}

type nopObserver struct{}

func (nopObserver) SessionOpened()                 {}
func (nopObserver) SessionClosed()                 {}
func (nopObserver) UpstreamConnected()             {}
func (nopObserver) UpstreamDisconnected()          {}
func (nopObserver) Reconnect(ReconnectReason)      {}
func (nopObserver) ReconnectDelayed(time.Duration) {}
func (nopObserver) ActivitiesReceived(int)         {}
func (nopObserver) ActivitiesDelivered(int)        {}
func (nopObserver) Replay(bool)                    {}
func (nopObserver) TokenRefreshed(error)           {}
func (nopObserver) Ownership(OwnershipEvent)       {}
