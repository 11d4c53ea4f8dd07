package session

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/dlsse/dlsse/internal/wsframe"
	"github.com/dlsse/dlsse/sse"
)

// Wire is how a subscriber's stream is encoded.
type Wire uint8

const (
	// WireSSE: Server-Sent Events, each activity an event whose id is
	// its cursor, with status events (the default).
	WireSSE Wire = iota
	// WireWebSocket: Direct Line's own stream, WebSocket text frames
	// each holding an ActivitySet, {"activities":[…],"watermark":"…"},
	// the watermark being the cursor of its last durable activity
	// (absent from a set of typing only, as Direct Line does). No status
	// events: the end of a stream is a close frame.
	WireWebSocket
)

// dataPrefix starts an SSE data line.
var dataPrefix = []byte("data: ")

// activityJSON returns the activity an encoded event carries: its one data
// line (ingest puts every activity on one line), shared, not copied.
func activityJSON(ev sse.Event) []byte {
	b := []byte(ev)
	for len(b) > 0 {
		if bytes.HasPrefix(b, dataPrefix) {
			line := b[len(dataPrefix):]
			if i := bytes.IndexByte(line, '\n'); i >= 0 {
				return line[:i]
			}
			return line
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		b = b[i+1:]
	}
	return nil
}

// wsSet is the ActivitySet frame a WebSocket subscriber is filling.
type wsSet struct {
	at      int  // where its frame starts in the batch; -1: none open
	durable bool // it holds an activity with a cursor
}

// appendActivity adds an activity's event to the batch: as is for SSE, in
// the open ActivitySet frame (opened on demand) for a WebSocket.
func (sub *Subscriber) appendActivity(dst []byte, ev sse.Event, durable bool) []byte {
	if sub.wire == WireSSE {
		return append(dst, ev...)
	}
	if sub.set.at < 0 {
		dst, sub.set.at = wsframe.BeginText(dst)
		dst = append(dst, `{"activities":[`...)
	} else {
		dst = append(dst, ',')
	}
	sub.set.durable = sub.set.durable || durable
	return append(dst, activityJSON(ev)...)
}

// closeSet finishes the open ActivitySet frame, if any. Its watermark is
// the cursor after its last durable activity, so that the client's
// reconnect (GET /conversations/{id}?watermark=) resumes exactly there.
func (sub *Subscriber) closeSet(dst []byte) []byte {
	if sub.set.at < 0 {
		return dst
	}
	dst = append(dst, ']')
	if sub.set.durable {
		dst = append(dst, `,"watermark":"`...)
		dst = sub.last.Append(dst) // no character of a cursor needs escaping
		dst = append(dst, '"')
	}
	dst = append(dst, '}')
	dst = wsframe.EndText(dst, sub.set.at)
	sub.set = wsSet{at: -1}
	return dst
}

// appendLast appends what ends the stream: ev for SSE; for a WebSocket,
// after the open set, a close frame saying why.
func (sub *Subscriber) appendLast(dst []byte, ev sse.Event, why error) []byte {
	if sub.wire == WireSSE {
		return append(dst, ev...)
	}
	dst = sub.closeSet(dst)
	code, reason := closeFor(ev, why)
	return wsframe.AppendClose(dst, code, reason)
}

// closeFor is the close code and reason of a WebSocket stream that ends
// with ev (an error event, or nil) because of why. Direct Line clients
// reconnect after any close, through the REST reconnect, which then
// answers with the status that tells them what happened (403, 404).
func closeFor(ev sse.Event, why error) (int, string) {
	switch {
	case errors.Is(why, ErrEnded):
		return wsframe.CloseNormal, "conversation ended"
	case errors.Is(why, ErrUnavailable):
		return wsframe.CloseTryAgainLater, "Direct Line unavailable; reconnect later"
	}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(activityJSON(ev), &e) == nil && e.Error.Code != "" {
		return wsframe.ClosePolicyViolation, e.Error.Code + ": " + e.Error.Message
	}
	return wsframe.CloseInternalError, "the conversation cannot be continued"
}

// ReasonProtocolError ends a stream whose client broke its protocol: a
// bad WebSocket frame, or a flood.
const ReasonProtocolError sse.Reason = "protocol_error"

// String names the wire in logs and metrics: "sse", "websocket".
func (w Wire) String() string {
	if w == WireWebSocket {
		return "websocket"
	}
	return "sse"
}
