package cluster

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/dlsse/dlsse/session"
)

func (r *Redis) Acquire(ctx context.Context, conversationID, holder string, ttl time.Duration) (session.Lease, time.Duration, error) {
	res, err := r.run(ctx, "acquire", acquireScript,
		[]string{r.key(conversationID, "lease"), r.key(conversationID, "fence")},
		[]string{holder, ms(ttl), strconv.FormatInt(time.Now().UnixMilli(), 10), ms(r.cfg.IdleTTL)}).AsIntSlice()
	if err != nil {
		return session.Lease{}, 0, fmt.Errorf("cluster: acquire: %w", err)
	}
	if len(res) != 2 {
		return session.Lease{}, 0, fmt.Errorf("cluster: acquire: unexpected answer %v", res)
	}
	if res[0] == 0 {
		return session.Lease{}, time.Duration(max(res[1], 0)) * time.Millisecond, session.ErrNotOwner
	}
	return session.Lease{Conversation: conversationID, Holder: holder, Fence: session.Fence(res[1])}, 0, nil
}

func (r *Redis) Renew(ctx context.Context, l session.Lease, ttl time.Duration) error {
	n, err := r.run(ctx, "renew", renewScript, []string{r.key(l.Conversation, "lease")},
		[]string{leaseValue(l), ms(ttl)}).AsInt64()
	if err != nil {
		return fmt.Errorf("cluster: renew: %w", err)
	}
	if n != 1 {
		return session.ErrNotOwner
	}
	return nil
}

func (r *Redis) Release(ctx context.Context, l session.Lease) error {
	msg := encodeMessage(l.Holder, &session.Message{Kind: session.KindReleased})
	err := r.run(ctx, "release", releaseScript, []string{r.key(l.Conversation, "lease")},
		[]string{leaseValue(l), r.channel(l.Conversation), string(msg)}).Error()
	if err != nil {
		return fmt.Errorf("cluster: release: %w", err)
	}
	return nil
}
