package session

import (
	"context"

	"github.com/dlsse/dlsse/sse"
)

// catchUp serves a subscriber whose cursor the log cannot: it polls Direct
// Line from the cursor's watermark, queues what the subscriber has not
// seen, and sets the point where it joins the shared log. It returns a
// non-empty reason when Direct Line could not be asked.
//
// Joining is exact: the subscriber continues in the log right after the
// last activity the poll returned (found by id), or right after the poll's
// watermark. Until the log gets there (the session may still be replaying),
// the subscriber waits. Every id the poll returned is also skipped once if
// the log repeats it, since Direct Line may replay more than asked.
func (sub *Subscriber) catchUp(ctx context.Context) sse.Reason {
	s := sub.s
	from := sub.last
	head := s.log.Head()
	set, err := s.m.up.Activities(ctx, s.upstreamCredential(), s.id, from.Base)
	if err != nil {
		s.lg().Info().Err(classify(err)).Msg("catch-up poll failed")
		return ReasonUpstream
	}
	acts, _ := decodeActivities(set.Activities)
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
	return ""
}
