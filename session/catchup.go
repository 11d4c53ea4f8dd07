package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/dlsse/dlsse/upstream"
)

// catchUp serves a subscriber whose cursor the log cannot: it polls Direct
// Line from the cursor's watermark, queues what the subscriber has not
// seen, and sets the point where it joins the shared log. Errors: Direct
// Line's refusal (ErrBadCursor when it does not know the watermark), or
// one matching ErrUnavailable.
//
// Joining is exact: the subscriber continues in the log right after the
// last activity the poll returned (found by id), or right after the poll's
// watermark. Until the log gets there (the session may still be replaying),
// the subscriber waits. Every id the poll returned is also skipped once if
// the log repeats it, since Direct Line may replay more than asked.
func (sub *Subscriber) catchUp(ctx context.Context) error {
	s := sub.s
	from := sub.last
	head := s.log.Head()
	set, err := s.m.up.Activities(ctx, s.upstreamCredential(), s.id, from.Base)
	if err != nil {
		var apiErr *upstream.APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusBadRequest {
			return fmt.Errorf("%w: Direct Line does not know its watermark", ErrBadCursor)
		}
		err = classify(err)
		s.lg().Info().Err(err).Msg("catch-up poll failed")
		return err
	}
	acts, _ := decodeActivities(nil, set.Activities)
	start := 0
	if from.HasHash {
		start = -1
		for i := range acts {
			if acts[i].durable() && IDHash(acts[i].meta.ID) == from.Hash {
				start = i + 1
				break
			}
		}
		if start < 0 {
			// The activity is not after its own base: the cursor was
			// not ours or Direct Line forgot it. Resend from the base
			// rather than risk losing anything.
			s.lg().Warn().Msg("resume cursor's activity not found upstream; resending from its watermark")
			start = 0
		}
	}
	sub.skip = make(map[uint64]struct{}, len(acts))
	wm := set.Watermark
	if wm == "" {
		wm = from.Base // nothing new: the poll ended where it started
	}
	sub.join = anchor{head: head, watermark: wm}
	for i := range acts {
		d := &acts[i]
		if !d.durable() {
			continue
		}
		h := IDHash(d.meta.ID)
		sub.skip[h] = struct{}{}
		sub.join.last, sub.join.hasLast = h, true
		if i < start {
			continue
		}
		sub.pending = append(sub.pending, pendingEvent{
			ev:     activityEvent(d, from.Base),
			cursor: CursorFor(from.Base, d.meta.ID),
		})
	}
	sub.joining = true
	return nil
}
