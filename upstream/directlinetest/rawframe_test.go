package directlinetest

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
)

func TestSendRaw(t *testing.T) {
	s := newTestServer(t)
	if err := s.SendRaw("nosuchconversation", []byte("x")); !errors.Is(err, errUnknownConversation) {
		t.Fatalf("unknown conversation: %v", err)
	}
	convID, _, url := start(t, s)
	if err := s.SendRaw(convID, []byte("x")); !errors.Is(err, errNoSocket) {
		t.Fatalf("no socket: %v", err)
	}
	ws := dial(t, url)

	// Queued in order with real activities, delivered verbatim, and the
	// caller's buffer is not kept.
	raw := []byte(`{not json`)
	if err := s.SendRaw(convID, raw); err != nil {
		t.Fatal(err)
	}
	raw[0] = 'X'
	if err := s.Push(convID, "after"); err != nil {
		t.Fatal(err)
	}
	if got := readRaw(t, ws); !bytes.Equal(got, []byte(`{not json`)) {
		t.Fatalf("raw frame = %q", got)
	}
	if st := readSet(t, ws); len(st.Activities) != 1 || texts(st.Activities)[0] != "after" || st.wm() != "1" {
		t.Fatalf("set after the raw frame: %v wm %s", st.Activities, st.wm())
	}

	// Not part of the history: a new socket replays only the activity.
	if err := s.SendRaw(convID, []byte(`{"activities":[{"type":"message","text":"raw"}]}`)); err != nil {
		t.Fatal(err)
	}
	if got := readRaw(t, ws); !bytes.Contains(got, []byte(`"raw"`)) {
		t.Fatalf("second raw frame = %q", got)
	}
	if h := s.History(convID); len(h) != 1 {
		t.Fatalf("history has %d activities, want 1: raw frames are not stored", len(h))
	}
	r := call(t, s, "GET", "/conversations/"+convID+"?watermark=0", s.Secret(), nil)
	mustStatus(t, "reconnect", r, http.StatusOK, "")
	ws2 := dial(t, r.str("streamUrl"))
	if st := readSet(t, ws2); len(st.Activities) != 1 || texts(st.Activities)[0] != "after" {
		t.Fatalf("replay = %v, want only the pushed activity", texts(st.Activities))
	}
}
