package session

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/dlsse/dlsse/internal/wsframe"
	"github.com/dlsse/dlsse/sse"
)

// wsFrames splits what a WebSocket subscriber wrote into frames.
func wsFrames(t *testing.T, b []byte) (ops []byte, payloads [][]byte) {
	t.Helper()
	for len(b) > 0 {
		if len(b) < 2 || b[1]&0x80 != 0 {
			t.Fatalf("not a server frame: % x", b)
		}
		n, at := int(b[1]&0x7F), 2
		switch n {
		case 126:
			n, at = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			n, at = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		ops = append(ops, b[0])
		payloads = append(payloads, b[at:at+n])
		b = b[at+n:]
	}
	return ops, payloads
}

type activitySet struct {
	Activities []map[string]any `json:"activities"`
	Watermark  *string          `json:"watermark"`
}

// TestWireWebSocket: a WebSocket subscriber gets Direct Line's stream:
// one text frame per batch holding the activities as an ActivitySet whose
// watermark is the cursor after its last durable activity (none for a set
// of typing only), no status events, and a close frame at the end.
func TestWireWebSocket(t *testing.T) {
	msg := activityEvent(&decoded{meta: activityMeta{ID: "m1", Type: "message"}, json: []byte(`{"id":"m1","type":"message","text":"a\nb"}`)}, "7")
	typing := activityEvent(&decoded{meta: activityMeta{Type: "typing"}, json: []byte(`{"type":"typing"}`)}, "7")
	f := newFanOutWire(t, 1, msg, WireWebSocket)
	sub := f.subs[0]
	ctx := context.Background()

	f.s.log.Append([]Entry{{Event: typing}}, "")
	out, end := sub.Next(ctx, nil)
	ops, ps := wsFrames(t, out)
	if end != "" || len(ops) != 1 || ops[0] != 0x81 {
		t.Fatalf("typing: frames %x, end %q", ops, end)
	}
	var set activitySet
	if err := json.Unmarshal(ps[0], &set); err != nil || len(set.Activities) != 1 || set.Watermark != nil {
		t.Fatalf("typing set %s (%v): want one activity, no watermark", ps[0], err)
	}

	f.s.log.Append([]Entry{{Event: typing}, {Event: msg, Durable: true, Hash: IDHash("m1"), Base: "7"}}, "8")
	f.s.setStatus(Status{State: StateReconnecting}) // never reaches a WebSocket
	out, _ = sub.Next(ctx, out[:0])
	ops, ps = wsFrames(t, out)
	if len(ops) != 1 {
		t.Fatalf("frames %x, want one set", ops)
	}
	set = activitySet{}
	if err := json.Unmarshal(ps[0], &set); err != nil || len(set.Activities) != 2 || set.Watermark == nil {
		t.Fatalf("set %s (%v)", ps[0], err)
	}
	if set.Activities[1]["text"] != "a\nb" {
		t.Fatalf("activity changed on the way: %v", set.Activities[1])
	}
	if want := CursorFor("7", "m1").String(); *set.Watermark != want {
		t.Fatalf("watermark %q, want the cursor %q", *set.Watermark, want)
	}
	if c, err := ParseCursor(*set.Watermark); err != nil || c != sub.Cursor() {
		t.Fatalf("the watermark does not resume where the subscriber stands: %v %v", c, err)
	}

	f.s.endWith(ErrEnded, nil)
	out, end = sub.Next(ctx, out[:0])
	ops, ps = wsFrames(t, out)
	if end != sse.ReasonEnded || len(ops) != 1 || ops[0] != 0x88 || binary.BigEndian.Uint16(ps[0]) != wsframe.CloseNormal {
		t.Fatalf("end: frames %x %q, reason %q", ops, ps, end)
	}
}

// TestWireWebSocketTokenExpired: a stream whose token expired ends with a
// policy close naming the error code.
func TestWireWebSocketTokenExpired(t *testing.T) {
	f := newFanOutWire(t, 1, benchEvent(100), WireWebSocket)
	sub := f.subs[0]
	f.s.endAccess(sub.acc, tokenExpiredEvent)
	out, end := sub.Next(context.Background(), nil)
	ops, ps := wsFrames(t, out)
	if end != ReasonTokenExpired || len(ops) != 1 || ops[0] != 0x88 {
		t.Fatalf("frames %x, reason %q", ops, end)
	}
	if code, reason := binary.BigEndian.Uint16(ps[0]), string(ps[0][2:]); code != wsframe.ClosePolicyViolation || reason[:12] != "TokenExpired" {
		t.Fatalf("close %d %q", code, reason)
	}
}
