package directlinetest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fasthttp/websocket"
)

// controlCall makes one call to the control API and decodes its JSON
// answer into out (when out is not nil).
func controlCall(t *testing.T, base, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %q", method, path, err, b)
		}
	}
	return res.StatusCode
}

func TestControlAPIDrivesTheFake(t *testing.T) {
	s := newTestServer(t)
	ctl := httptest.NewServer(s.ControlHandler())
	defer ctl.Close()
	defer http.DefaultClient.CloseIdleConnections()

	var conv struct{ ConversationID, Token string }
	if st := controlCall(t, ctl.URL, "POST", "/conversations", "", &conv); st != 200 || conv.ConversationID == "" || conv.Token == "" {
		t.Fatalf("create: %d %+v", st, conv)
	}
	// The token works on the Direct Line surface.
	r := call(t, s, "GET", "/conversations/"+conv.ConversationID, conv.Token, nil)
	mustStatus(t, "reconnect with the control token", r, 200, "")
	c := dial(t, r.str("streamUrl"))
	defer c.Close()

	var sent struct{ Sent int }
	if st := controlCall(t, ctl.URL, "POST", "/conversations/"+conv.ConversationID+"/messages", `{"count":3,"prefix":"m"}`, &sent); st != 200 || sent.Sent != 3 {
		t.Fatalf("messages: %d %+v", st, sent)
	}
	if st := controlCall(t, ctl.URL, "POST", "/conversations/"+conv.ConversationID+"/messages", `{"texts":["a","b"],"set":true}`, &sent); st != 200 || sent.Sent != 2 {
		t.Fatalf("set: %d %+v", st, sent)
	}
	var got []string
	for len(got) < 5 {
		got = append(got, texts(readSet(t, c).Activities)...)
	}
	if strings.Join(got, ",") != "m1,m2,m3,a,b" {
		t.Fatalf("socket got %v", got)
	}
	var hist []map[string]any
	if st := controlCall(t, ctl.URL, "GET", "/conversations/"+conv.ConversationID+"/history", "", &hist); st != 200 || len(hist) != 5 {
		t.Fatalf("history: %d, %d activities", st, len(hist))
	}

	var n struct{ Sockets int }
	if st := controlCall(t, ctl.URL, "POST", "/sockets/drop?conversation="+conv.ConversationID, "", &n); st != 200 || n.Sockets != 1 {
		t.Fatalf("drop: %d %+v", st, n)
	}
	if websocket.IsCloseError(readErr(t, c), websocket.CloseNormalClosure) {
		t.Fatal("a dropped socket got a close frame")
	}
	var st Stats
	if code := controlCall(t, ctl.URL, "GET", "/stats", "", &st); code != 200 || st.SocketsOpened != 1 || st.SocketsOpen != 0 {
		t.Fatalf("stats: %d %+v", code, st)
	}
	if code := controlCall(t, ctl.URL, "POST", "/tokens/expire", "", nil); code != http.StatusNoContent {
		t.Fatalf("expire: %d", code)
	}
	r = call(t, s, "GET", "/conversations/"+conv.ConversationID, conv.Token, nil)
	mustStatus(t, "reconnect after expire", r, 403, "TokenExpired")

	// Bad input is refused with a Direct Line-shaped 4xx, never applied.
	for _, bad := range []struct{ method, path, body string }{
		{"POST", "/conversations/nope/messages", `{"texts":["x"]}`},
		{"POST", "/conversations/" + conv.ConversationID + "/messages", `{"count":-1}`},
		{"POST", "/conversations/" + conv.ConversationID + "/messages", `{"count":`},
		{"POST", "/sockets/close?conversation=x&code=12", ""},
		{"POST", "/failures", `[]`},
	} {
		if code := controlCall(t, ctl.URL, bad.method, bad.path, bad.body, nil); code != 400 && code != 404 {
			t.Errorf("%s %s %s: %d, want 400 or 404", bad.method, bad.path, bad.body, code)
		}
	}
	if len(s.History(conv.ConversationID)) != 5 {
		t.Fatal("a refused call changed the history")
	}
}
