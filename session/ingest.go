package session

import (
	"bytes"
	"encoding/json"

	"github.com/dlsse/dlsse/sse"
	"github.com/dlsse/dlsse/upstream"
)

// activityMeta is the little of an activity the gateway reads.
type activityMeta struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// decoded is one activity ready for the log or for a subscriber.
type decoded struct {
	meta activityMeta
	json []byte // compact, one line
}

// durable reports whether an activity takes part in resume: it has an id
// and is not typing, which Direct Line neither stores nor replays.
func (d *decoded) durable() bool { return d.meta.ID != "" && d.meta.Type != "typing" }

// decodeActivities compacts every activity onto one line (an SSE data line)
// and reads its id and type. Activities that are not JSON objects are
// dropped and counted in bad.
func decodeActivities(raw []json.RawMessage) (out []decoded, bad int) {
	out = make([]decoded, 0, len(raw))
	for _, r := range raw {
		var buf bytes.Buffer
		buf.Grow(len(r))
		if err := json.Compact(&buf, r); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
			bad++
			continue
		}
		var d decoded
		if err := json.Unmarshal(buf.Bytes(), &d.meta); err != nil {
			bad++
			continue
		}
		d.json = buf.Bytes()
		out = append(out, d)
	}
	return out, bad
}

// activityEvent encodes an activity as an SSE event; durable ones carry
// their cursor as id.
func activityEvent(d *decoded, base string) sse.Event {
	if !d.durable() {
		return sse.NewEvent("", "activity", d.json)
	}
	return sse.NewEvent(CursorFor(base, d.meta.ID).String(), "activity", d.json)
}

// ingest appends an ActivitySet to the log, dropping activities already
// there (Direct Line may replay more than asked after a reconnect), and
// wakes the subscribers.
func (s *Session) ingest(set upstream.ActivitySet) {
	wm := set.Watermark
	if wm != "" && ValidateWatermark(wm) != nil {
		s.lg.Warn().Int("len", len(wm)).Msg("upstream watermark with unexpected characters ignored")
		wm = ""
	}
	acts, bad := decodeActivities(set.Activities)
	if bad > 0 {
		s.lg.Warn().Int("count", bad).Msg("malformed upstream activities skipped")
	}
	base := s.log.Watermark()
	entries := make([]Entry, 0, len(acts))
	lastDurable := -1
	seen := make(map[uint64]struct{}, len(acts))
	for i := range acts {
		d := &acts[i]
		e := Entry{Base: base}
		if d.durable() {
			e.Durable = true
			e.Hash = IDHash(d.meta.ID)
			if _, dup := seen[e.Hash]; dup || s.log.Contains(e.Hash) {
				continue
			}
			seen[e.Hash] = struct{}{}
			lastDurable = len(entries)
		}
		if d.meta.Type == "endOfConversation" {
			s.endSeen = true
		}
		e.Event = activityEvent(d, base)
		entries = append(entries, e)
	}
	if wm != "" && lastDurable >= 0 {
		entries[lastDurable].After = wm
	}
	if len(entries) == 0 && (wm == "" || wm == base) {
		return
	}
	s.log.Append(entries, wm)
	s.m.cfg.Observer.ActivitiesReceived(len(entries))
	s.notify()
}
