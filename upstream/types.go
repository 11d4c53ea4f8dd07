package upstream

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Conversation is the part of a start or reconnect answer the gateway needs.
type Conversation struct {
	ConversationID string `json:"conversationId"`
	Token          string `json:"token,omitempty"`
	ExpiresIn      int    `json:"expires_in,omitempty"`
	StreamURL      string `json:"streamUrl,omitempty"`
}

// ActivitySet is one batch of activities, from the stream or from polling.
// Activities are kept as raw JSON: the gateway forwards them untouched.
type ActivitySet struct {
	Activities []json.RawMessage
	// Watermark is the position after the last activity; empty when the
	// set carried none (the previous one then still holds).
	Watermark string

	buf *[]byte // the activities' bytes, from setBuffers (a stream message's set)
}

// Release gives back the buffer a stream message's activities were
// decoded into; the activities are unusable after. A set that did not
// come from a stream message has none, and needs no Release.
func (s *ActivitySet) Release() {
	if s.buf != nil && cap(*s.buf) <= maxPooledMessage {
		setBuffers.Put(s.buf)
	}
	s.buf, s.Activities = nil, nil
}

// UnmarshalJSON accepts a watermark that is a string, a number, null or
// absent: it is opaque, and services have been seen to send each.
func (s *ActivitySet) UnmarshalJSON(b []byte) error {
	var raw struct {
		Activities []json.RawMessage `json:"activities"`
		Watermark  json.RawMessage   `json:"watermark"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	s.Activities = raw.Activities
	s.Watermark = ""
	w := bytes.TrimSpace(raw.Watermark)
	switch {
	case len(w) == 0 || bytes.Equal(w, []byte("null")):
	case w[0] == '"':
		if err := json.Unmarshal(w, &s.Watermark); err != nil {
			return err
		}
	case (w[0] >= '0' && w[0] <= '9') || w[0] == '-':
		s.Watermark = string(w)
	default:
		return fmt.Errorf("upstream: watermark is neither string nor number")
	}
	return nil
}
