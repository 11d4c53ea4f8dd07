package directlinetest

import (
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

func TestStartStreamDeliversFromTheBeginning(t *testing.T) {
	s := newTestServer(t)
	convID, tok := s.NewConversation()
	if err := s.Push(convID, "a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	r := call(t, s, "POST", "/conversations", tok, nil)
	mustStatus(t, "start of a started conversation", r, http.StatusOK, "")
	ws := dial(t, r.str("streamUrl"))
	st := readSet(t, ws)
	if !reflect.DeepEqual(texts(st.Activities), []string{"a", "b", "c"}) || st.wm() != "3" {
		t.Fatalf("backlog set %+v watermark %s", st, st.wm())
	}
}

func TestReconnectWithWatermarkReplaysBacklogAsOneSet(t *testing.T) {
	s := newTestServer(t)
	convID, tok, _ := start(t, s)
	post(t, s, convID, tok, "one")
	post(t, s, convID, tok, "two") // history: one, echo: one, two, echo: two

	r := call(t, s, "GET", "/conversations/"+convID+"?watermark=1", tok, nil)
	mustStatus(t, "reconnect", r, http.StatusOK, "")
	if r.str("conversationId") != convID || r.str("token") != tok {
		t.Errorf("reconnect body %v", r.body)
	}
	ws := dial(t, r.str("streamUrl"))
	st := readSet(t, ws)
	if !reflect.DeepEqual(texts(st.Activities), []string{"echo: one", "two", "echo: two"}) || st.wm() != "4" {
		t.Fatalf("backlog %+v watermark %s", st, st.wm())
	}
	if st.Activities[0]["id"] != convID+"|0000001" {
		t.Errorf("first replayed id %v", st.Activities[0]["id"])
	}
	if err := s.Push(convID, "live"); err != nil {
		t.Fatal(err)
	}
	if live := readSet(t, ws); !reflect.DeepEqual(texts(live.Activities), []string{"live"}) || live.wm() != "5" {
		t.Fatalf("live set %+v watermark %s", live, live.wm())
	}
	if st := s.Stats(); st.ReconnectCalls != 1 {
		t.Errorf("ReconnectCalls = %d", st.ReconnectCalls)
	}

	// With the secret a new token is issued rather than echoing the secret.
	sr := call(t, s, "GET", "/conversations/"+convID+"?watermark=0", s.Secret(), nil)
	mustStatus(t, "reconnect with secret", sr, http.StatusOK, "")
	if tk := sr.str("token"); tk == "" || tk == s.Secret() {
		t.Errorf("token %q", tk)
	}
	mustStatus(t, "bad watermark", call(t, s, "GET", "/conversations/"+convID+"?watermark=-1", tok, nil), http.StatusBadRequest, "BadArgument")
}

func TestReconnectWithoutWatermarkIsFromNow(t *testing.T) {
	s := newTestServer(t)
	convID, tok, _ := start(t, s)
	post(t, s, convID, tok, "before")

	r := call(t, s, "GET", "/conversations/"+convID, tok, nil)
	mustStatus(t, "reconnect", r, http.StatusOK, "")
	ws := dial(t, r.str("streamUrl"))
	if err := s.Push(convID, "after"); err != nil {
		t.Fatal(err)
	}
	st := readSet(t, ws)
	if !reflect.DeepEqual(texts(st.Activities), []string{"after"}) || st.wm() != "3" {
		t.Fatalf("first set %+v watermark %s, want only the new activity", st, st.wm())
	}
}

func TestStreamURLExpiredOrUnknown(t *testing.T) {
	s := newTestServer(t, WithStreamURLWindow(time.Nanosecond))
	_, _, url := start(t, s)
	if _, resp, err := dialRaw(url); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("expired streamUrl: err %v resp %v, want 403", err, resp)
	}

	s2 := newTestServer(t)
	convA, _, urlA := start(t, s2)
	convB, _, _ := start(t, s2)
	for name, u := range map[string]string{
		"unknown ticket":       urlA[:strings.Index(urlA, "?t=")] + "?t=bogus",
		"no ticket":            urlA[:strings.Index(urlA, "?t=")],
		"other conversation's": strings.Replace(urlA, convA, convB, 1),
	} {
		if _, resp, err := dialRaw(u); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: err %v resp %v, want 403", name, err, resp)
		}
	}
	if st := s2.Stats(); st.SocketsOpened != 0 {
		t.Errorf("rejected dials opened sockets: %+v", st)
	}
	// A plain GET with a valid ticket is refused without disturbing anything.
	resp, err := s2.Client().Get(strings.Replace(urlA, "ws://", "http://", 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain GET on the stream: %d", resp.StatusCode)
	}
}

func TestSecondSocketClosesFirstWithCollision(t *testing.T) {
	s := newTestServer(t)
	convID, tok, url := start(t, s)
	first := dial(t, url)
	r := call(t, s, "GET", "/conversations/"+convID, tok, nil)
	second := dial(t, r.str("streamUrl"))

	err := readErr(t, first)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "collision" {
		t.Fatalf("first socket ended with %v, want close 1008 collision", err)
	}
	if st := s.Stats(); st.Collisions != 1 || st.SocketsOpened != 2 || st.SocketsOpen != 1 {
		t.Errorf("stats %+v", st)
	}
	if n := s.SocketsOpen(convID); n != 1 {
		t.Errorf("SocketsOpen = %d", n)
	}
	if err := s.Push(convID, "x"); err != nil {
		t.Fatal(err)
	}
	if st := readSet(t, second); !reflect.DeepEqual(texts(st.Activities), []string{"x"}) {
		t.Fatalf("second socket got %+v", st)
	}
}

func TestDropSockets(t *testing.T) {
	s := newTestServer(t)
	convA, _, urlA := start(t, s)
	convB, _, urlB := start(t, s)
	wsA, wsB := dial(t, urlA), dial(t, urlB)

	if n := s.DropSockets(convA); n != 1 {
		t.Fatalf("DropSockets(A) = %d", n)
	}
	err := readErr(t, wsA)
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("dropped socket got a close frame: %v", err)
	}
	if s.SocketsOpen(convA) != 0 || s.SocketsOpen(convB) != 1 {
		t.Errorf("SocketsOpen A=%d B=%d", s.SocketsOpen(convA), s.SocketsOpen(convB))
	}
	if n := s.DropSockets(""); n != 1 {
		t.Fatalf(`DropSockets("") = %d`, n)
	}
	_ = readErr(t, wsB)
	if n := s.DropSockets(""); n != 0 {
		t.Errorf("nothing left to drop, got %d", n)
	}
	if err := s.WaitFor(testCtx(t), func(st Stats) bool { return st.SocketsOpen == 0 && st.SocketsOpened == 2 }); err != nil {
		t.Fatal(err)
	}
}

func TestCloseSocketSendsCloseFrame(t *testing.T) {
	s := newTestServer(t)
	convID, _, url := start(t, s)
	ws := dial(t, url)
	if err := s.Push(convID, "last"); err != nil {
		t.Fatal(err)
	}
	if !s.CloseSocket(convID, 4001, "bye") {
		t.Fatal("CloseSocket found no socket")
	}
	// Messages queued before the close frame are still delivered.
	if st := readSet(t, ws); !reflect.DeepEqual(texts(st.Activities), []string{"last"}) {
		t.Fatalf("got %+v", st)
	}
	err := readErr(t, ws)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4001 || ce.Text != "bye" {
		t.Fatalf("socket ended with %v, want close 4001 bye", err)
	}
	if s.CloseSocket(convID, 4001, "bye") {
		t.Error("second CloseSocket found a socket")
	}
}

func TestClientDepartureIsNoticed(t *testing.T) {
	s := newTestServer(t)
	convID, _, url := start(t, s)
	ws := dial(t, url)
	// Client keepalives (empty messages) are ignored.
	for range 3 {
		if err := ws.WriteMessage(websocket.TextMessage, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Push(convID, "still here"); err != nil {
		t.Fatal(err)
	}
	if st := readSet(t, ws); len(st.Activities) != 1 {
		t.Fatalf("got %+v", st)
	}
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "done")
	if err := ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(testCtx(t), func(st Stats) bool { return st.SocketsOpen == 0 }); err != nil {
		t.Fatal(err)
	}
	if s.SocketsOpen(convID) != 0 {
		t.Error("socket still attached")
	}
}

func TestKeepalive(t *testing.T) {
	s := newTestServer(t, WithKeepalive(10*time.Millisecond))
	_, _, url := start(t, s)
	ws := dial(t, url)
	if raw := readRaw(t, ws); len(raw) != 0 {
		t.Fatalf("keepalive %q, want an empty text message", raw)
	}
}

func TestFailNextDials(t *testing.T) {
	s := newTestServer(t)
	_, _, url := start(t, s)
	s.FailNextDials(1, http.StatusBadGateway)
	if _, resp, err := dialRaw(url); err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("err %v resp %v, want 502", err, resp)
	}
	dial(t, url) // the same URL works once the fault is consumed
	if st := s.Stats(); st.SocketsOpened != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestStuckClientNeverBlocksREST(t *testing.T) {
	s := newTestServer(t)
	convID, tok, url := start(t, s)
	// A client that never reads, with a tiny receive buffer, so the
	// server's writes back up quickly.
	d := websocket.Dialer{
		HandshakeTimeout: testTimeout,
		NetDial: func(network, addr string) (net.Conn, error) {
			c, err := net.Dial(network, addr)
			if err == nil {
				err = c.(*net.TCPConn).SetReadBuffer(4096)
			}
			return c, err
		},
	}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	big := strings.Repeat("x", 256<<10)
	for range 32 {
		if err := s.Push(convID, big); err != nil {
			t.Fatal(err)
		}
	}
	post(t, s, convID, tok, "still served")
	if got := len(s.History(convID)); got != 34 {
		t.Errorf("history length %d", got)
	}
}

func TestStallSocketsGoesSilent(t *testing.T) {
	s := newTestServer(t, WithKeepalive(10*time.Millisecond))
	conv, _, streamURL := start(t, s)
	conn := dial(t, streamURL)
	// Keepalives flow before the stall.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := conn.ReadMessage(); err != nil || len(msg) != 0 {
		t.Fatalf("keepalive before stall: %q %v", msg, err)
	}
	pong := make(chan struct{}, 8)
	conn.SetPongHandler(func(string) error { pong <- struct{}{}; return nil })
	if n := s.StallSockets(conv); n != 1 {
		t.Fatalf("stalled %d sockets", n)
	}
	if err := s.Push(conv, "lost in the void"); err != nil {
		t.Fatal(err)
	}
	_ = conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second))
	// Nothing at all arrives: no activity, no keepalive, no pong. A few
	// keepalive periods of silence prove it (this bounded wait is the
	// assertion itself, not a wait for a condition).
	_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	keepalives := 0
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			break
		}
		if len(msg) != 0 {
			t.Fatalf("stalled socket delivered %q", msg)
		}
		keepalives++
	}
	// One keepalive may have been on the wire already; twenty periods
	// passed.
	if keepalives > 1 {
		t.Errorf("stalled socket sent %d keepalives", keepalives)
	}
	select {
	case <-pong:
		t.Errorf("stalled socket answered a ping")
	default:
	}
	if h := s.History(conv); len(h) != 1 {
		t.Errorf("history = %d activities, want the pushed one kept", len(h))
	}
}
