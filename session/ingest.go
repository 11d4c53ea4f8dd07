package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fastjson"

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
// and reads its id and type, appending them to out. Activities that are
// not JSON objects, or whose id or type is neither a string nor null, are
// dropped and counted in bad.
func decodeActivities(out []decoded, raw []json.RawMessage) (_ []decoded, bad int) {
	out = slices.Grow(out, len(raw))
	mr := metaReaders.Get().(*metaReader)
	defer metaReaders.Put(mr)
	for _, r := range raw {
		line, ok := oneLine(r)
		if !ok {
			bad++
			continue
		}
		v, err := mr.p.ParseBytes(line)
		if err != nil || v.Type() != fastjson.TypeObject {
			bad++
			continue
		}
		d := decoded{json: line}
		d.meta, ok = mr.read(v)
		if ok && !(plain(d.meta.ID) && plain(d.meta.Type)) {
			// Escapes or other than ASCII: fastjson unescapes best
			// effort, json.Unmarshal exactly (what the REST path reads).
			var m activityMeta // on the heap only on this path
			ok = json.Unmarshal(line, &m) == nil
			d.meta = m
		}
		if !ok {
			bad++
			continue
		}
		out = append(out, d)
	}
	return out, bad
}

// decodedScratch holds entriesOf's decoded activities between messages:
// a slice a message would cost, without one kept by every session.
var decodedScratch = sync.Pool{New: func() any { return new([]decoded) }}

// metaReaders read activities' ids and types: a reader reuses its
// parser's memory, where json.Unmarshal cost a dozen allocations an
// activity.
var metaReaders = sync.Pool{New: func() any {
	mr := &metaReader{}
	mr.visitFn = mr.visit // bound once: a closure per activity would allocate
	return mr
}}

type metaReader struct {
	p       fastjson.Parser
	m       activityMeta
	ok      bool
	visitFn func(key []byte, val *fastjson.Value)
}

// read reads an activity's id and type as json.Unmarshal would: names
// matched without regard to case, the last one winning, null leaving the
// field empty, anything but a string refusing the activity.
func (mr *metaReader) read(v *fastjson.Value) (activityMeta, bool) {
	mr.m, mr.ok = activityMeta{}, true
	v.GetObject().Visit(mr.visitFn)
	return mr.m, mr.ok
}

func (mr *metaReader) visit(key []byte, val *fastjson.Value) {
	isID := bytes.EqualFold(key, []byte("id"))
	if !isID && !bytes.EqualFold(key, []byte("type")) {
		return
	}
	switch val.Type() {
	case fastjson.TypeNull:
	case fastjson.TypeString:
		if isID {
			mr.m.ID = string(val.GetStringBytes())
		} else {
			mr.m.Type = activityType(val.GetStringBytes())
		}
	default:
		mr.ok = false
	}
}

// plain reports whether s is ASCII without a backslash.
func plain(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 || s[i] == '\\' {
			return false
		}
	}
	return true
}

// activityType is t as a string, without an allocation for the types
// Bot Framework defines.
func activityType(t []byte) string {
	switch string(t) { // compared in place
	case "message":
		return "message"
	case "typing":
		return "typing"
	case "event":
		return "event"
	case "endOfConversation":
		return "endOfConversation"
	case "conversationUpdate":
		return "conversationUpdate"
	case "invoke":
		return "invoke"
	case "trace":
		return "trace"
	case "messageReaction":
		return "messageReaction"
	case "messageUpdate":
		return "messageUpdate"
	case "messageDelete":
		return "messageDelete"
	case "handoff":
		return "handoff"
	}
	return string(t)
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

// ingest appends an ActivitySet the owner read from Direct Line: to the
// shared journal first (with other replicas), then to its own log,
// dropping activities the log holds already (Direct Line may replay more
// than asked after a reconnect), and wakes the subscribers. When the
// journal refuses (ErrNotOwner: the lease is gone) or cannot be reached,
// the log stays as it was and the error ends the socket: what it read is
// read again, from the log's watermark, by whoever owns the conversation.
func (s *Session) ingest(o *ownership, set upstream.ActivitySet) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	entries, wm, enders := s.entriesOf(set)
	if len(entries) == 0 && (wm == "" || wm == s.log.Watermark()) {
		return nil
	}
	if err := s.share(o, entries, wm); err != nil {
		return err
	}
	if s.enders = append(s.enders, enders...); len(s.enders) > maxEnders {
		s.enders = s.enders[len(s.enders)-maxEnders:]
	}
	s.log.Append(entries, wm)
	s.m.cfg.Observer.ActivitiesReceived(len(entries))
	s.notify()
	return nil
}

// share gives other replicas what the owner is about to append: durable
// entries and the watermark go to the journal, typing only on the bus.
// A single process shares with nobody. applyMu is held.
func (s *Session) share(o *ownership, entries []Entry, wm string) error {
	if !s.m.clustered {
		return nil
	}
	ctx, cancel := context.WithTimeout(o.ctx, leaseCallTimeout)
	defer cancel()
	durable := entries
	var ephemeral []Entry
	if !allDurable(entries) {
		durable = make([]Entry, 0, len(entries))
		for _, e := range entries {
			if e.Durable {
				durable = append(durable, e)
			} else {
				ephemeral = append(ephemeral, e)
			}
		}
	}
	if len(durable) > 0 || wm != "" {
		pos, err := s.m.shared.Journal.Append(ctx, o.lease, durable, wm)
		if err != nil {
			return err
		}
		s.journalPos = pos
	}
	for _, e := range ephemeral {
		err := s.m.shared.Bus.PublishOwned(ctx, o.lease, Message{Kind: KindEphemeral, Entry: e})
		if errors.Is(err, ErrNotOwner) {
			return err
		}
		// Typing that does not reach other replicas is not worth a
		// reconnect.
	}
	return nil
}

func allDurable(entries []Entry) bool {
	for i := range entries {
		if !entries[i].Durable {
			return false
		}
	}
	return true
}

// entriesOf encodes an ActivitySet as log entries after the log's newest:
// activities the log holds already, and repeats within the set, dropped.
// enders are the senders of the endOfConversation activities among them
// that are not marked as a user's. applyMu is held.
func (s *Session) entriesOf(set upstream.ActivitySet) (entries []Entry, wm string, enders []string) {
	wm = set.Watermark
	if wm != "" && ValidateWatermark(wm) != nil {
		s.lg().Warn().Int("len", len(wm)).Msg("upstream watermark with unexpected characters ignored")
		wm = ""
	}
	scratch := decodedScratch.Get().(*[]decoded)
	acts, bad := decodeActivities((*scratch)[:0], set.Activities)
	defer func() {
		clear(acts) // the activities' bytes are the log's now, not the pool's
		*scratch = acts[:0]
		decodedScratch.Put(scratch)
	}()
	if bad > 0 {
		s.lg().Warn().Int("count", bad).Msg("malformed upstream activities skipped")
	}
	base := s.log.Watermark()
	entries = make([]Entry, 0, len(acts))
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
		if d.meta.Type == "endOfConversation" {
			if from, user := sender(d); !user {
				enders = append(enders, from)
			}
		}
		e.Event = activityEvent(d, base)
		entries = append(entries, e)
	}
	if wm != "" && lastDurable >= 0 {
		entries[lastDurable].After = wm
	}
	return entries, wm, enders
}

// maxEnders bounds the endOfConversation senders a session remembers.
const maxEnders = 8

// sender is who sent an activity, and whether it is marked as a user's.
func sender(d *decoded) (id string, user bool) {
	var a struct {
		From struct {
			ID   string `json:"id"`
			Role string `json:"role"`
		} `json:"from"`
	}
	_ = json.Unmarshal(d.json, &a)
	return a.From.ID, strings.EqualFold(a.From.Role, "user")
}

// botEnded reports whether the bot ended the conversation: an
// endOfConversation came from someone no client posted as through dlsse.
// Asked when the socket closed, not when the activity arrived: a replica
// told who posted it may tell a little later than Direct Line echoes it.
// In a cluster the news comes over the bus, which may still be bringing
// it when the socket closes (it was sent before the post, on another
// path): an owner gives it up to senderNewsGrace before it decides. A ctx
// that ends meanwhile (the tenure) decides nothing: false.
func (s *Session) botEnded(ctx context.Context) bool {
	var grace <-chan time.Time
	for {
		news := s.m.senders.news() // before the check: a note after it is news
		if !s.unknownEnder() {
			return false
		}
		if !s.m.clustered {
			return true
		}
		if grace == nil {
			t := time.NewTimer(senderNewsGrace)
			defer t.Stop()
			grace = t.C
		}
		select {
		case <-news:
		case <-grace:
			return true
		case <-ctx.Done():
			return false
		}
	}
}

// senderNewsGrace is how long an owner waits for the bus to say who posted
// an endOfConversation before it takes it for the bot's: ending a
// conversation the bot ended this much later costs little; ending one a
// participant left, everybody's chat.
const senderNewsGrace = 2 * time.Second

// unknownEnder reports whether an endOfConversation came from someone not
// known to have posted through dlsse.
func (s *Session) unknownEnder() bool {
	for _, id := range s.enders {
		if !s.m.senders.has(s.id, id) {
			return true
		}
	}
	return false
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
