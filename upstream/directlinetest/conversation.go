package directlinetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"
)

// conversation is the state of one Direct Line conversation. All fields are
// guarded by Server.mu.
type conversation struct {
	id        string
	started   bool              // POST /conversations has been answered 201 for it
	history   []json.RawMessage // durable activities, as sent to clients
	typingSeq int               // numbers ephemeral typing activities
	sock      *socket           // the conversation's one socket, if any
}

// errUnknownConversation is returned by hooks given a conversation id the
// Server never created.
var errUnknownConversation = errors.New("directlinetest: unknown conversation")

// newConversationLocked creates a conversation that has not been started.
// s.mu must be held.
func (s *Server) newConversationLocked() *conversation {
	c := &conversation{id: newID()}
	s.convs[c.id] = c
	return c
}

// activitySet is the message a stream delivers: Direct Line's ActivitySet.
// Watermark is omitted for sets holding only ephemeral (typing) activities,
// because they do not advance the history.
type activitySet struct {
	Activities []json.RawMessage `json:"activities"`
	Watermark  string            `json:"watermark,omitempty"`
}

// isTyping reports whether an activity is ephemeral. Typing activities are
// never stored, never replayed and never returned by polling.
func isTyping(a map[string]any) bool {
	t, _ := a["type"].(string)
	return t == "typing"
}

// stampOptions says how deliver completes activities: bot activities get a
// default type and sender, user activities are kept as the client sent them.
type stampOptions struct {
	defaultFrom map[string]any
	// sentAt adds channelData.sentAt (and, to durable activities,
	// channelData.seq): see PushStamped.
	sentAt bool
}

// deliver stores and broadcasts sets of activities on conversation convID,
// in order, each inner slice becoming one ActivitySet on the socket. It
// stamps each activity (id, timestamp, channelId, conversation) on a copy,
// so callers' maps are never modified. It returns the stamped activities,
// encoded, in order. Nothing is delivered if any activity cannot be encoded.
//
// Storing and enqueueing happen under one lock hold, which is what keeps the
// order on the socket identical to the order of the history and makes every
// set's watermark correct.
func (s *Server) deliver(convID string, sets [][]map[string]any, opt stampOptions) ([]json.RawMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.convs[convID]
	if !ok {
		return nil, errUnknownConversation
	}
	type encodedSet struct {
		acts    []json.RawMessage
		durable []bool // durable[i]: acts[i] goes into the history
	}
	var (
		out     []json.RawMessage
		encoded []encodedSet
		seq     = len(c.history)
		typing  = c.typingSeq
		ts      = now().Format(time.RFC3339Nano)
	)
	for _, set := range sets {
		var es encodedSet
		for _, in := range set {
			a := maps.Clone(in)
			if a == nil {
				a = map[string]any{}
			}
			if opt.defaultFrom != nil {
				if _, ok := a["type"]; !ok {
					a["type"] = "message"
				}
				if _, ok := a["from"]; !ok {
					a["from"] = maps.Clone(opt.defaultFrom)
				}
			}
			var id string
			durable := !isTyping(a)
			if durable {
				id = fmt.Sprintf("%s|%07d", convID, seq)
				seq++
			} else {
				typing++
				id = fmt.Sprintf("%s|typing-%d", convID, typing)
			}
			a["id"] = id
			a["timestamp"] = ts
			a["channelId"] = "directline"
			a["conversation"] = map[string]any{"id": convID}
			if opt.sentAt {
				stampSentAt(a, durable, seq-1)
			}
			raw, err := json.Marshal(a)
			if err != nil {
				return nil, fmt.Errorf("directlinetest: encoding activity: %w", err)
			}
			es.acts = append(es.acts, raw)
			es.durable = append(es.durable, durable)
			out = append(out, raw)
		}
		encoded = append(encoded, es)
	}
	// Everything encoded: commit.
	c.typingSeq = typing
	for _, es := range encoded {
		if len(es.acts) == 0 {
			continue
		}
		set := activitySet{Activities: es.acts}
		for i, raw := range es.acts {
			if es.durable[i] {
				c.history = append(c.history, raw)
				set.Watermark = strconv.Itoa(len(c.history))
			}
		}
		if c.sock != nil {
			c.sock.send(set.encode())
		}
	}
	return out, nil
}

// encode renders the set for a socket. The activities are already valid,
// compact JSON, so they are spliced in rather than re-encoded, which
// json.Marshal would do at a noticeable cost for large activities.
func (set activitySet) encode() []byte {
	var b bytes.Buffer
	b.WriteString(`{"activities":[`)
	for i, a := range set.Activities {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(a)
	}
	b.WriteByte(']')
	if set.Watermark != "" {
		b.WriteString(`,"watermark":"`)
		b.WriteString(set.Watermark) // decimal digits: nothing to escape
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.Bytes()
}

// decodeActivity decodes an activity keeping numbers verbatim.
func decodeActivity(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var a map[string]any
	if err := dec.Decode(&a); err != nil {
		return nil, err
	}
	return a, nil
}

// historyAfterLocked returns the durable activities after watermark pos,
// clamped to the history. s.mu must be held.
func (c *conversation) historyAfterLocked(pos int) []json.RawMessage {
	if pos < 0 {
		pos = 0
	}
	if pos >= len(c.history) {
		return nil
	}
	return append([]json.RawMessage(nil), c.history[pos:]...)
}

// startLocked marks the conversation started and reports whether this was
// the first start. s.mu must be held.
func (c *conversation) startLocked() bool {
	first := !c.started
	c.started = true
	return first
}
