package directlinetest

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
	"time"
)

func TestPostEchoTypingAndReplyArriveInOrder(t *testing.T) {
	s := newTestServer(t)
	convID, tok, url := start(t, s)
	ws := dial(t, url)

	r := call(t, s, "POST", "/conversations/"+convID+"/activities", tok, map[string]any{
		"type":        "message",
		"from":        map[string]any{"id": "user1", "name": "User"},
		"text":        "hi",
		"channelData": map[string]any{"clientActivityID": "cid-1", "big": json.Number("12345678901234567890")},
	})
	mustStatus(t, "post", r, http.StatusOK, "")
	userID := r.str("id")
	if userID != convID+"|0000000" {
		t.Fatalf("id %q", userID)
	}

	echo := readSet(t, ws)
	if len(echo.Activities) != 1 || echo.wm() != "1" {
		t.Fatalf("echo set %+v (watermark %s)", echo, echo.wm())
	}
	u := echo.Activities[0]
	if u["id"] != userID || u["text"] != "hi" || u["channelId"] != "directline" ||
		field(u, "conversation", "id") != convID || field(u, "from", "id") != "user1" ||
		field(u, "channelData", "clientActivityID") != "cid-1" {
		t.Errorf("echoed activity %v", u)
	}
	if ts, _ := u["timestamp"].(string); ts == "" {
		t.Errorf("no timestamp")
	} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Errorf("timestamp %q: %v", ts, err)
	}

	typing := readSet(t, ws)
	if len(typing.Activities) != 1 || typing.Watermark != nil || typing.Activities[0]["type"] != "typing" ||
		typing.Activities[0]["id"] != convID+"|typing-1" || field(typing.Activities[0], "from", "id") != BotID {
		t.Fatalf("typing set %+v (watermark %s)", typing, typing.wm())
	}

	reply := readSet(t, ws)
	if len(reply.Activities) != 1 || reply.wm() != "2" {
		t.Fatalf("reply set %+v (watermark %s)", reply, reply.wm())
	}
	b := reply.Activities[0]
	if b["type"] != "message" || b["text"] != "echo: hi" || b["replyToId"] != userID || b["id"] != convID+"|0000001" ||
		field(b, "from", "id") != BotID || field(b, "from", "name") != BotName || field(b, "from", "role") != "bot" {
		t.Errorf("reply %v", b)
	}

	// Numbers survive verbatim, in the history as on the wire.
	h := s.History(convID)
	if len(h) != 2 || field(h[0], "channelData", "big") != json.Number("12345678901234567890") {
		t.Errorf("history %v", h)
	}
	if st := s.Stats(); st.Posts != 1 {
		t.Errorf("Posts = %d", st.Posts)
	}
}

func TestPostValidation(t *testing.T) {
	s := newTestServer(t)
	convID, tok, _ := start(t, s)
	for _, tc := range []struct {
		body, code string
	}{
		{"not json", "BadArgument"},
		{"[]", "BadArgument"},
		{`"message"`, "BadArgument"},
		{"{}", "MissingProperty"},
		{`{"type":null}`, "MissingProperty"},
		{`{"type":5}`, "BadArgument"},
		{`{"type":""}`, "BadArgument"},
		{`{"type":"message"} {}`, "BadArgument"},
	} {
		r := call(t, s, "POST", "/conversations/"+convID+"/activities", tok, tc.body)
		mustStatus(t, tc.body, r, http.StatusBadRequest, tc.code)
	}
	if h := s.History(convID); len(h) != 0 {
		t.Errorf("rejected posts reached the history: %v", h)
	}
	if st := s.Stats(); st.Posts != 0 {
		t.Errorf("Posts = %d", st.Posts)
	}
}

func TestPollingNeverReturnsTyping(t *testing.T) {
	s := newTestServer(t)
	convID, tok, _ := start(t, s)
	post(t, s, convID, tok, "a") // user + typing + echo
	if err := s.PushTyping(convID); err != nil {
		t.Fatal(err)
	}
	// A typing activity posted by the user is ephemeral too.
	r := call(t, s, "POST", "/conversations/"+convID+"/activities", tok, map[string]any{"type": "typing"})
	mustStatus(t, "post typing", r, http.StatusOK, "")
	if r.str("id") != convID+"|typing-3" {
		t.Errorf("typing id %q", r.str("id"))
	}
	if err := s.Push(convID, "b"); err != nil {
		t.Fatal(err)
	}

	all := call(t, s, "GET", "/conversations/"+convID+"/activities", tok, nil)
	mustStatus(t, "poll", all, http.StatusOK, "")
	acts, _ := all.body["activities"].([]any)
	var got []string
	for _, a := range acts {
		m := a.(map[string]any)
		if m["type"] == "typing" {
			t.Errorf("polling returned typing %v", m)
		}
		txt, _ := m["text"].(string)
		got = append(got, txt)
	}
	if want := []string{"a", "echo: a", "b"}; !reflect.DeepEqual(got, want) || all.str("watermark") != "3" {
		t.Errorf("poll = %q watermark %q, want %q watermark 3", got, all.str("watermark"), want)
	}

	after := call(t, s, "GET", "/conversations/"+convID+"/activities?watermark=2", tok, nil)
	if acts, _ := after.body["activities"].([]any); len(acts) != 1 || after.str("watermark") != "3" {
		t.Errorf("poll after 2: %v", after.body)
	}
	none := call(t, s, "GET", "/conversations/"+convID+"/activities?watermark=3", tok, nil)
	if acts, ok := none.body["activities"].([]any); !ok || len(acts) != 0 {
		t.Errorf("poll after 3 must be an empty list: %v", none.body)
	}
	mustStatus(t, "bad watermark", call(t, s, "GET", "/conversations/"+convID+"/activities?watermark=x", tok, nil), http.StatusBadRequest, "BadArgument")
	if st := s.Stats(); st.ActivityGets != 3 {
		t.Errorf("ActivityGets = %d", st.ActivityGets)
	}
}

func TestPushAndPushSet(t *testing.T) {
	s := newTestServer(t)
	convID, _, url := start(t, s)
	ws := dial(t, url)

	if err := s.Push(convID, "a", "b"); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"a", "b"} {
		st := readSet(t, ws)
		if len(st.Activities) != 1 || st.Activities[0]["text"] != want || st.wm() != []string{"1", "2"}[i] ||
			field(st.Activities[0], "from", "role") != "bot" {
			t.Fatalf("push set %d: %+v watermark %s", i, st, st.wm())
		}
	}
	if err := s.PushSet(convID, "c", "d"); err != nil {
		t.Fatal(err)
	}
	st := readSet(t, ws)
	if !reflect.DeepEqual(texts(st.Activities), []string{"c", "d"}) || st.wm() != "4" {
		t.Fatalf("PushSet set %+v watermark %s", st, st.wm())
	}
	if err := s.PushTyping(convID); err != nil {
		t.Fatal(err)
	}
	if st := readSet(t, ws); st.Watermark != nil || st.Activities[0]["type"] != "typing" {
		t.Fatalf("typing set %+v", st)
	}

	for name, err := range map[string]error{
		"Push":       s.Push("nosuch", "x"),
		"PushSet":    s.PushSet("nosuch", "x"),
		"PushTyping": s.PushTyping("nosuch"),
	} {
		if err == nil {
			t.Errorf("%s on an unknown conversation succeeded", name)
		}
	}
}

func TestCustomBot(t *testing.T) {
	bot := BotFunc(func(c *Conv, a map[string]any) {
		if a["type"] != "message" {
			return
		}
		_ = c.SendSet(
			map[string]any{"text": "one", "replyToId": a["id"]},
			map[string]any{"type": "event", "name": "e", "from": map[string]any{"id": "other"}},
		)
	})
	s := newTestServer(t, WithBot(bot))
	convID, tok, url := start(t, s)
	ws := dial(t, url)
	post(t, s, convID, tok, "x")
	readSet(t, ws) // the user's own activity
	st := readSet(t, ws)
	if len(st.Activities) != 2 || st.wm() != "3" {
		t.Fatalf("bot set %+v watermark %s", st, st.wm())
	}
	one, ev := st.Activities[0], st.Activities[1]
	if one["type"] != "message" || field(one, "from", "id") != BotID || ev["type"] != "event" || field(ev, "from", "id") != "other" {
		t.Errorf("bot activities %v %v", one, ev)
	}
}

func TestHistoryIsACopy(t *testing.T) {
	s := newTestServer(t)
	convID, tok := s.NewConversation()
	post(t, s, convID, tok, "x")
	h := s.History(convID)
	h[0]["text"] = "mutated"
	if got := s.History(convID)[0]["text"]; got != "x" {
		t.Errorf("History shares state: %v", got)
	}
	if s.History("nosuch") != nil {
		t.Errorf("History of an unknown conversation is not nil")
	}
	if st := s.Stats(); st.StartCalls != 0 {
		t.Errorf("NewConversation counted as a start call")
	}
}
