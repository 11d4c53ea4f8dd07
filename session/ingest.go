package session

import (
	"bytes"
	"encoding/json"
	"strings"

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
		line, ok := oneLine(r)
		if !ok {
			bad++
			continue
		}
		var d decoded
		if err := json.Unmarshal(line, &d.meta); err != nil {
			bad++
			continue
		}
		d.json = line
		out = append(out, d)
	}
	return out, bad
}

// oneLine returns r as a JSON object on one line. What Direct Line sends
// usually is one already (r is then used as it is: it is the decoder's
// own copy; the caller's json.Unmarshal validates it); anything else is
// compacted.
func oneLine(r json.RawMessage) ([]byte, bool) {
	if len(r) > 0 && r[0] == '{' && bytes.IndexByte(r, '\n') < 0 && bytes.IndexByte(r, '\r') < 0 {
		return r, true
	}
	var buf bytes.Buffer
	buf.Grow(len(r))
	if err := json.Compact(&buf, r); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return nil, false
	}
	return buf.Bytes(), true
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
		s.lg().Warn().Int("len", len(wm)).Msg("upstream watermark with unexpected characters ignored")
		wm = ""
	}
	acts, bad := decodeActivities(set.Activities)
	if bad > 0 {
		s.lg().Warn().Int("count", bad).Msg("malformed upstream activities skipped")
	}
	base := s.log.Watermark()
	entries := make([]Entry, 0, len(acts))
	lastDurable := -1
	// Ids already taken from this set. Sets are small (one activity, as
	// a rule): a linear scan of entries beats a map made for each.
	var seen map[uint64]struct{}
	if len(acts) > 8 {
		seen = make(map[uint64]struct{}, len(acts))
	}
	for i := range acts {
		d := &acts[i]
		e := Entry{Base: base}
		if d.durable() {
			e.Durable = true
			e.Hash = IDHash(d.meta.ID)
			if inSet(entries, seen, e.Hash) || s.log.Contains(e.Hash) {
				continue
			}
			if seen != nil {
				seen[e.Hash] = struct{}{}
			}
			lastDurable = len(entries)
		}
		if d.meta.Type == "endOfConversation" && s.fromBot(d) {
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

// fromBot reports whether an activity was sent by the bot: not marked as
// a user's, and not from an id a client posted as through dlsse.
func (s *Session) fromBot(d *decoded) bool {
	var a struct {
		From struct {
			ID   string `json:"id"`
			Role string `json:"role"`
		} `json:"from"`
	}
	_ = json.Unmarshal(d.json, &a)
	if strings.EqualFold(a.From.Role, "user") {
		return false
	}
	return !s.m.senders.has(s.id, a.From.ID)
}

// inSet reports whether a durable entry with hash is among entries (the
// ones this set has produced so far), through seen when the set is big.
func inSet(entries []Entry, seen map[uint64]struct{}, hash uint64) bool {
	if seen != nil {
		_, ok := seen[hash]
		return ok
	}
	for i := range entries {
		if entries[i].Durable && entries[i].Hash == hash {
			return true
		}
	}
	return false
}
