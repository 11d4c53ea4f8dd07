package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/dlsse/dlsse/internal/inbox"
	"github.com/dlsse/dlsse/session"
)

// Reconnect pauses of the pub/sub connection, and how long Follow waits
// for a connection being made.
const (
	resubscribeMin = 100 * time.Millisecond
	resubscribeMax = 5 * time.Second
	followWait     = 2 * time.Second
	pubsubTimeout  = 5 * time.Second
)

func (r *Redis) Publish(ctx context.Context, conversationID, from string, m session.Message) error {
	start := time.Now()
	err := r.client.Do(ctx, r.client.B().Publish().Channel(r.channel(conversationID)).
		Message(string(encodeMessage(from, &m))).Build()).Error()
	if r.cfg.Observe != nil {
		r.cfg.Observe("publish", time.Since(start), err)
	}
	if err != nil {
		return fmt.Errorf("cluster: publish: %w", err)
	}
	return nil
}

func (r *Redis) PublishOwned(ctx context.Context, l session.Lease, m session.Message) error {
	keep := "0"
	if m.Kind == session.KindStatus || m.Kind == session.KindEnded {
		keep = "1"
	}
	err := r.run(ctx, "publish_owned", publishOwnedScript,
		[]string{r.key(l.Conversation, "lease"), r.key(l.Conversation, "meta")},
		[]string{leaseValue(l), r.channel(l.Conversation), string(encodeMessage(l.Holder, &m)), keep, ms(r.cfg.IdleTTL)}).Error()
	if isNotOwner(err) {
		return session.ErrNotOwner
	}
	if err != nil {
		return fmt.Errorf("cluster: publish: %w", err)
	}
	return nil
}

// Follow subscribes the replica's one pub/sub connection to the
// conversation's channel (when nobody of this replica follows it yet) and
// returns once Redis confirmed, so nothing published after it is missed.
// While Redis is unreachable it returns at once: the subscription is made
// on reconnect, and gap is called then.
func (r *Redis) Follow(conversationID, replica string, fn func(session.Message), gap func()) (func(), error) {
	ch := r.channel(conversationID)
	f := &follower{replica: replica, box: inbox.New(func(d delivery) {
		if d.gap {
			gap()
			return
		}
		fn(d.msg)
	})}
	r.mu.Lock()
	first := len(r.followers[ch]) == 0
	r.followers[ch] = append(r.followers[ch], f)
	up := r.up
	r.mu.Unlock()
	// A connection being made is waited for a little: while it is,
	// nothing is subscribed.
	t := time.NewTimer(followWait)
	select {
	case <-up:
	case <-t.C:
	case <-r.ctx.Done():
	}
	t.Stop()
	r.mu.Lock()
	dc, connected := r.dc, r.connected
	r.mu.Unlock()
	if first && connected {
		if err := r.pubsub(dc, dc.B().Subscribe().Channel(ch).Build()); err != nil {
			// The connection broke: the supervisor resubscribes and
			// tells every follower of the gap.
			r.cfg.Logger.Debug().Err(err).Msg("subscribe failed; will resubscribe")
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			r.followers[ch] = slices.DeleteFunc(r.followers[ch], func(x *follower) bool { return x == f })
			last := len(r.followers[ch]) == 0
			if last {
				delete(r.followers, ch)
			}
			dc, connected := r.dc, r.connected
			r.mu.Unlock()
			if last && connected {
				_ = r.pubsub(dc, dc.B().Unsubscribe().Channel(ch).Build())
			}
			f.box.Stop()
		})
	}, nil
}

// onMessage routes a published message to the followers of its channel,
// but those of the replica that sent it.
func (r *Redis) onMessage(m rueidis.PubSubMessage) {
	from, msg, err := decodeMessage(m.Message)
	if err != nil {
		r.cfg.Logger.Warn().Str("channel", m.Channel).Msg("malformed message on the bus skipped")
		return
	}
	r.mu.Lock()
	for _, f := range r.followers[m.Channel] {
		if f.replica != from {
			f.box.Put(delivery{msg: msg})
		}
	}
	r.mu.Unlock()
}

// supervise keeps the pub/sub connection: it subscribes to every followed
// channel, and when the connection breaks, connects again and tells every
// follower that it may have missed messages.
func (r *Redis) supervise() {
	defer r.wg.Done()
	pause := resubscribeMin
	for r.ctx.Err() == nil {
		dc, cancel := r.client.Dedicate()
		broken := dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: r.onMessage})
		err := r.subscribeAll(dc)
		if err == nil {
			if !r.healthy.Swap(true) && pause > resubscribeMin {
				r.cfg.Logger.Info().Msg("Redis reachable again")
			}
			pause = resubscribeMin
			// Whoever followed before this connection was subscribed
			// may have missed something: they look for themselves.
			r.tellGaps()
			select {
			case err = <-broken:
			case <-r.ctx.Done():
			}
		}
		r.mu.Lock()
		if r.connected {
			r.up = make(chan struct{})
		}
		r.dc, r.connected = nil, false
		r.mu.Unlock()
		cancel()
		if r.ctx.Err() != nil {
			return
		}
		if r.healthy.Swap(false) || pause == resubscribeMin {
			r.cfg.Logger.Warn().Err(err).Msg("Redis unreachable: conversations cannot be shared until it is back")
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			return
		}
		pause = min(2*pause, resubscribeMax)
	}
}

// subscribeAll subscribes dc to every followed channel, including those
// followed while it did, and makes it the connection Follow uses.
func (r *Redis) subscribeAll(dc rueidis.DedicatedClient) error {
	var done []string
	for {
		r.mu.Lock()
		var todo []string
		for ch := range r.followers {
			if !slices.Contains(done, ch) {
				todo = append(todo, ch)
			}
		}
		if len(todo) == 0 && done != nil {
			r.dc, r.connected = dc, true
			close(r.up)
			r.mu.Unlock()
			return nil
		}
		r.mu.Unlock()
		cmd := dc.B().Ping().Build()
		if len(todo) > 0 {
			cmd = dc.B().Subscribe().Channel(todo...).Build()
		}
		if err := r.pubsub(dc, cmd); err != nil {
			return err
		}
		done = append(done, todo...)
		if done == nil {
			done = []string{}
		}
	}
}

// tellGaps tells every follower that it may have missed messages.
func (r *Redis) tellGaps() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fs := range r.followers {
		for _, f := range fs {
			f.box.Put(delivery{gap: true})
		}
	}
}

// pubsub sends one command on the pub/sub connection. One at a time: a
// dedicated connection pairs a subscription's confirmation with its
// command in order, and concurrent ones were seen to leave a caller waiting
// for good. Bounded, so a broken connection cannot hold a session's start.
func (r *Redis) pubsub(dc rueidis.DedicatedClient, cmd rueidis.Completed) error {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	ctx, cancel := context.WithTimeout(r.ctx, pubsubTimeout)
	defer cancel()
	return dc.Do(ctx, cmd).Error()
}
