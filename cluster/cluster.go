// Package cluster lets several dlsse replicas share their conversations
// through Redis: the lease that makes one replica the owner of a
// conversation's Direct Line socket, with a fencing token; the journal, a
// capped Redis Stream of what the owner read; and the bus, Redis Pub/Sub,
// which carries every journal append (published by the same script that
// stored it), typing, statuses and releases to the replicas that follow the
// conversation. It implements session.Shared; session/sharedtest is its
// conformance suite.
//
// A conversation's keys share the hash tag {conversationId}, so that a
// move to Redis Cluster needs no key change; every write an owner makes is
// a script that checks its lease first.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/dlsse/dlsse/internal/inbox"
	"github.com/dlsse/dlsse/session"
)

// Defaults for Config's zero values.
const (
	DefaultPrefix  = "dlsse"
	DefaultKeep    = 1024
	DefaultIdleTTL = 24 * time.Hour
)

// Config configures a Redis.
type Config struct {
	// URL is redis://[user:password@]host:port/db, or rediss:// for TLS.
	URL string
	// Prefix starts every key and channel, so that several deployments
	// can share one Redis. Default DefaultPrefix.
	Prefix string
	// Keep is how many journal entries a conversation keeps (at least:
	// trimming is approximate). Default DefaultKeep.
	Keep int
	// IdleTTL: a conversation's keys expire after this long without an
	// append. Default DefaultIdleTTL.
	IdleTTL time.Duration
	// Logger receives connection state changes.
	Logger zerolog.Logger
	// Observe, when set, is told every Redis call: what, how long, and
	// its error (nil when it succeeded).
	Observe func(op string, d time.Duration, err error)
}

// Redis is a session.Shared over one Redis. Close it when done.
type Redis struct {
	cfg    Config
	client rueidis.Client

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the pub/sub supervisor
	closed atomic.Bool

	healthy atomic.Bool

	subMu sync.Mutex // one command at a time on the pub/sub connection

	mu        sync.Mutex
	followers map[string][]*follower // channel -> followers
	dc        rueidis.DedicatedClient
	connected bool
	up        chan struct{} // closed once connected; a new one when the connection is lost
}

// follower is one session.Bus.Follow. Its inbox hands messages and gaps
// over in order, off the connection's goroutine.
type follower struct {
	replica string
	box     *inbox.Inbox[delivery]
}

// delivery is a message, or the news that some may have been missed.
type delivery struct {
	msg session.Message
	gap bool
}

// New connects to Redis. It fails when the URL is wrong; an unreachable
// Redis is not an error (the replica serves and reports unhealthy until it
// can reach it).
func New(cfg Config) (*Redis, error) {
	opt, err := rueidis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("cluster: redis_url: %w", err)
	}
	opt.DisableCache = true // no client-side caching: nothing is read twice
	opt.DisableRetry = true // a write is a fenced script: retrying is the session's decision
	opt.ConnWriteTimeout = 5 * time.Second
	opt.Dialer.Timeout = 5 * time.Second
	// One Redis (or a primary behind a failover address): with it, the
	// client is made even while Redis is down, and connects once it is up.
	opt.ForceSingleClient = true
	client, err := rueidis.NewClient(opt)
	if client == nil {
		return nil, fmt.Errorf("cluster: redis: %w", err)
	}
	if err != nil {
		cfg.Logger.Warn().Err(err).Msg("Redis unreachable at start; retrying")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Keep <= 0 {
		cfg.Keep = DefaultKeep
	}
	if cfg.IdleTTL <= 0 {
		cfg.IdleTTL = DefaultIdleTTL
	}
	r := &Redis{cfg: cfg, client: client, followers: make(map[string][]*follower), up: make(chan struct{})}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.wg.Add(1)
	go r.supervise()
	return r, nil
}

// Shared is r as a session.Shared.
func (r *Redis) Shared() session.Shared {
	return session.Shared{Leases: r, Journal: r, Bus: r, Healthy: r.Healthy}
}

// Healthy reports whether Redis was reachable at the last look (the
// pub/sub connection is up).
func (r *Redis) Healthy() bool { return r.healthy.Load() }

// Close stops following and closes the connections. Idempotent.
func (r *Redis) Close() {
	if !r.closed.CompareAndSwap(false, true) {
		return
	}
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	var all []*follower
	for _, fs := range r.followers {
		all = append(all, fs...)
	}
	r.followers = map[string][]*follower{}
	r.mu.Unlock()
	for _, f := range all {
		f.box.Stop()
	}
	r.client.Close()
}

// keys of a conversation.
func (r *Redis) key(conversationID, what string) string {
	return r.cfg.Prefix + ":{" + conversationID + "}:" + what
}

func (r *Redis) channel(conversationID string) string {
	return r.cfg.Prefix + ":{" + conversationID + "}"
}

// Operations names every call Observe is told of, for metrics.
func Operations() []string {
	return []string{"acquire", "renew", "release", "append", "read", "tail", "publish", "publish_owned"}
}

// run executes a script and reports it to Observe.
func (r *Redis) run(ctx context.Context, op string, s *rueidis.Lua, keys, args []string) rueidis.RedisResult {
	start := time.Now()
	res := s.Exec(ctx, r.client, keys, args)
	if r.cfg.Observe != nil {
		err := res.Error()
		if rueidis.IsRedisNil(err) || isNotOwner(err) {
			err = nil // an answer, not a failure
		}
		r.cfg.Observe(op, time.Since(start), err)
	}
	return res
}

func isNotOwner(err error) bool {
	var re *rueidis.RedisError
	return errors.As(err, &re) && re.Error() == "NOTOWNER"
}

// leaseValue is what the lease key holds for l.
func leaseValue(l session.Lease) string {
	return l.Holder + "|" + strconv.FormatUint(uint64(l.Fence), 10)
}

func ms(d time.Duration) string { return strconv.FormatInt(max(d.Milliseconds(), 1), 10) }

var (
	_ session.Leases  = (*Redis)(nil)
	_ session.Journal = (*Redis)(nil)
	_ session.Bus     = (*Redis)(nil)
)
