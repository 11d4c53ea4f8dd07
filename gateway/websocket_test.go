package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// dlBotAgent is what DirectLineJS sends with every call.
const dlBotAgent = "DirectLine/3.0 (directlinejs 0.15.8)"

// startAsDirectLineJS starts a conversation as DirectLineJS does: with
// x-ms-bot-agent, which gets it a ws:// stream URL.
func (h *harness) startAsDirectLineJS(t *testing.T) conversation {
	t.Helper()
	return h.callAsDirectLineJS(t, http.MethodPost, "/v3/directline/conversations", h.fake.Secret(), http.StatusCreated)
}

// reconnectAsDirectLineJS is DirectLineJS's recovery after a socket drop:
// GET /conversations/{id}?watermark=<the last watermark its stream gave>.
func (h *harness) reconnectAsDirectLineJS(t *testing.T, conv conversation, watermark string) conversation {
	t.Helper()
	return h.callAsDirectLineJS(t, http.MethodGet, "/v3/directline/conversations/"+conv.ConversationID+"?watermark="+watermark, conv.Token, http.StatusOK)
}

// callAsDirectLineJS makes a start or reconnect call with DirectLineJS's
// headers and wants status.
func (h *harness) callAsDirectLineJS(t *testing.T, method, path, credential string, status int) conversation {
	t.Helper()
	req, _ := http.NewRequest(method, h.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+credential)
	req.Header.Set("x-ms-bot-agent", dlBotAgent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var c conversation
	if err := json.Unmarshal(body, &c); err != nil || resp.StatusCode != status {
		t.Fatalf("%s %s: %d %s", method, redactURL(path), resp.StatusCode, body)
	}
	return c
}

// wsDial opens a stream URL as a WebSocket with fasthttp/websocket's
// client, which checks every frame the gateway writes.
func wsDial(ctx context.Context, t *testing.T, u string, header http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.DialContext(ctx, u, header)
	if err != nil {
		t.Fatalf("dial %s: %v (%s)", redactURL(u), err, respSummary(resp))
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// redactURL drops the query (t=) of a URL for a failure message.
func redactURL(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

func respSummary(resp *http.Response) string {
	if resp == nil {
		return "no answer"
	}
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

// dlSet is an ActivitySet as Direct Line's stream sends it.
type dlSet struct {
	Activities []activity `json:"activities"`
	Watermark  string     `json:"watermark"`
}

// wsReader reads sets off a WebSocket stream, as DirectLineJS does:
// empty messages are ignored, the watermark kept when a set has one.
type wsReader struct {
	t         *testing.T
	c         *websocket.Conn
	watermark string
	pending   []activity
}

// next returns the next non-typing activity.
func (r *wsReader) next(ctx context.Context) activity {
	r.t.Helper()
	for len(r.pending) == 0 {
		if dl, ok := ctx.Deadline(); ok {
			_ = r.c.SetReadDeadline(dl)
		}
		typ, msg, err := r.c.ReadMessage()
		if err != nil {
			r.t.Fatalf("reading the WebSocket stream: %v", err)
		}
		if typ != websocket.TextMessage {
			r.t.Fatalf("message of type %d, want text", typ)
		}
		if len(msg) == 0 {
			continue
		}
		var set dlSet
		if err := json.Unmarshal(msg, &set); err != nil {
			r.t.Fatalf("not an ActivitySet: %q", msg)
		}
		if set.Watermark != "" {
			r.watermark = set.Watermark
		}
		for _, a := range set.Activities {
			if a.Type != "typing" {
				r.pending = append(r.pending, a)
			}
		}
	}
	a := r.pending[0]
	r.pending = r.pending[1:]
	return a
}

// expectEchoes reads until it has the bot's echo of each text, in order,
// and fails on anything else (a repeat included).
func (r *wsReader) expectEchoes(ctx context.Context, texts ...string) {
	r.t.Helper()
	want := map[string]bool{}
	for _, tx := range texts {
		want[tx] = true
	}
	i := 0
	for i < len(texts) {
		a := r.next(ctx)
		if want[a.Text] { // the user's own message, delivered too
			continue
		}
		if a.Text != "echo: "+texts[i] {
			r.t.Fatalf("got %q, want %q (in order, once)", a.Text, "echo: "+texts[i])
		}
		i++
	}
}

// closeCode reads until the server closes and returns its close code.
func closeCode(ctx context.Context, t *testing.T, c *websocket.Conn) int {
	t.Helper()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetReadDeadline(dl)
	}
	for {
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		if err != nil {
			t.Fatalf("the stream ended without a close frame: %v", err)
		}
	}
}

// TestWebSocketStreamSpeaksDirectLine: a client that identifies as
// DirectLineJS gets a ws:// stream URL; opened as a WebSocket it gets
// Direct Line's stream (ActivitySets with cursor watermarks), from the
// same upstream socket as an SSE subscriber of the conversation; keepalives
// and pings from the client are taken; 20 posts come back in order, once.
func TestWebSocketStreamSpeaksDirectLine(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t, 20*time.Second)
	conv := h.startAsDirectLineJS(t)
	if !strings.HasPrefix(conv.StreamURL, "ws://") || !strings.Contains(conv.StreamURL, "lastEventId=~") {
		t.Fatalf("streamUrl %q: want ws:// from the beginning", redactURL(conv.StreamURL))
	}
	ws := wsDial(ctx, t, conv.StreamURL, nil)
	r := &wsReader{t: t, c: ws}
	sse := h.open(ctx, h.streamURL(conv.ConversationID, conv.Token), nil)

	pongs := make(chan string, 1)
	ws.SetPongHandler(func(s string) error { pongs <- s; return nil })
	if err := ws.WriteMessage(websocket.TextMessage, nil); err != nil { // DirectLineJS's keepalive
		t.Fatal(err)
	}
	if err := ws.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}

	var texts []string
	for i := range 20 {
		texts = append(texts, fmt.Sprintf("m%02d", i))
		h.post(conv.ConversationID, conv.Token, texts[i])
	}
	r.expectEchoes(ctx, texts...)
	if _, err := session.ParseCursor(r.watermark); err != nil {
		t.Fatalf("watermark %q is not a cursor: %v", r.watermark, err)
	}
	select {
	case p := <-pongs: // the pong handler runs inside ReadMessage
		if p != "hi" {
			t.Fatalf("pong %q", p)
		}
	default:
		t.Fatal("no pong for the client's ping")
	}
	for range 2 * len(texts) { // the SSE subscriber got the same
		nextActivity(ctx, t, sse)
	}
	if n := h.fake.SocketsOpen(conv.ConversationID); n != 1 {
		t.Fatalf("%d upstream sockets for one SSE and one WebSocket subscriber, want 1", n)
	}
}

// TestWebSocketReconnectFlowLosesNothing: DirectLineJS's recovery from a
// dropped socket: the reconnect route with the last watermark its stream
// gave (a dlsse cursor), then the returned stream URL: what was said in
// between arrives, once, and nothing before it again.
func TestWebSocketReconnectFlowLosesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t, 20*time.Second)
	conv := h.startAsDirectLineJS(t)
	ws := wsDial(ctx, t, conv.StreamURL, nil)
	r := &wsReader{t: t, c: ws}
	h.post(conv.ConversationID, conv.Token, "before")
	r.expectEchoes(ctx, "before")
	ws.Close()

	for _, tx := range []string{"gap1", "gap2", "gap3"} {
		h.post(conv.ConversationID, conv.Token, tx)
	}
	re := h.reconnectAsDirectLineJS(t, conv, r.watermark)
	u, _ := url.Parse(re.StreamURL)
	if u.Scheme != "ws" || u.Query().Get("lastEventId") != r.watermark {
		t.Fatalf("reconnect streamUrl %s?lastEventId=%s, want ws:// resuming at %s", redactURL(re.StreamURL), u.Query().Get("lastEventId"), r.watermark)
	}
	ws2 := wsDial(ctx, t, re.StreamURL, nil)
	r2 := &wsReader{t: t, c: ws2}
	h.post(conv.ConversationID, conv.Token, "after")
	// The user's own messages come first: "gap1" exactly, not "before".
	if a := r2.next(ctx); a.Text != "gap1" {
		t.Fatalf("first activity after the reconnect %q, want gap1", a.Text)
	}
	r2.expectEchoes(ctx, "gap1", "gap2", "gap3", "after")
}

// TestWebSocketBadFramesCloseOnlyThatClient: binary, oversized and
// malformed frames each close their own connection with RFC 6455's code;
// nothing crashes, and another subscriber keeps receiving.
func TestWebSocketBadFramesCloseOnlyThatClient(t *testing.T) {
	t.Parallel()
	obs := newHostileReasons()
	h := newHarness(t, harnessOptions{gateway: gateway.Config{Observer: obs}})
	ctx := testContext(t, 20*time.Second)
	conv := h.startAsDirectLineJS(t)
	good := &wsReader{t: t, c: wsDial(ctx, t, conv.StreamURL, nil)}

	cases := []struct {
		name string
		send func(c *websocket.Conn) error
		code int
	}{
		{"binary", func(c *websocket.Conn) error { return c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}) }, websocket.CloseUnsupportedData},
		{"oversized", func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 64<<10)))
		}, websocket.CloseMessageTooBig},
		{"not UTF-8", func(c *websocket.Conn) error { return c.WriteMessage(websocket.TextMessage, []byte{0xff, 0xfe}) }, websocket.CloseInvalidFramePayloadData},
		{"garbage", func(c *websocket.Conn) error {
			_, err := c.NetConn().Write([]byte("GET / HTTP/1.1\r\n\r\n")) // unmasked, reserved bits
			return err
		}, websocket.CloseProtocolError},
	}
	for i, tc := range cases {
		c := wsDial(ctx, t, conv.StreamURL, nil)
		if err := tc.send(c); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if code := closeCode(ctx, t, c); code != tc.code {
			t.Errorf("%s: closed with %d, want %d", tc.name, code, tc.code)
		}
		text := fmt.Sprintf("still here %d", i)
		h.post(conv.ConversationID, conv.Token, text)
		good.expectEchoes(ctx, text)
	}
	waitFor(t, 5*time.Second, "the bad clients' streams to be counted", func() bool {
		return obs.count(session.ReasonProtocolError) == len(cases) && obs.count(sse.ReasonClientGone) == 0
	})
}

// TestWebSocketClientCloseAndDepartureAreNoticed: a client's close frame
// is answered and its stream ends at once; a client that just goes away
// (no close frame) is noticed without waiting for a heartbeat, for
// WebSocket and SSE streams alike.
func TestWebSocketClientCloseAndDepartureAreNoticed(t *testing.T) {
	t.Parallel()
	obs := newHostileReasons()
	h := newHarness(t, harnessOptions{gateway: gateway.Config{Observer: obs, Heartbeat: time.Hour}})
	ctx := testContext(t, 20*time.Second)
	conv := h.startAsDirectLineJS(t)

	c := wsDial(ctx, t, conv.StreamURL, nil)
	if err := c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")); err != nil {
		t.Fatal(err)
	}
	if code := closeCode(ctx, t, c); code != websocket.CloseNormalClosure {
		t.Fatalf("close answered with %d, want the client's 1000 echoed", code)
	}
	waitFor(t, 5*time.Second, "the closed stream to end", func() bool { return h.gw.Streams() == 0 })

	wsDial(ctx, t, conv.StreamURL, nil).NetConn().Close()
	waitFor(t, 5*time.Second, "the departed WebSocket client to be noticed", func() bool { return h.gw.Streams() == 0 })

	s := h.open(ctx, h.streamURL(conv.ConversationID, conv.Token), nil)
	waitFor(t, 5*time.Second, "the SSE stream to open", func() bool { return h.gw.Streams() == 1 })
	s.Close()
	waitFor(t, 5*time.Second, "the departed SSE client to be noticed", func() bool { return h.gw.Streams() == 0 })
	if n := obs.count(sse.ReasonClientGone); n != 3 {
		t.Fatalf("%d streams ended client_gone, want 3", n)
	}
}

// TestWebSocketUpgradeRefusals: upgrades that cannot be served get a real
// HTTP refusal, Direct Line-shaped, never a 200 event stream and never a
// session behind it.
func TestWebSocketUpgradeRefusals(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 20*time.Second)
	refusedStatus := func(t *testing.T, u string, header http.Header) (int, string) {
		t.Helper()
		c, resp, err := websocket.DefaultDialer.DialContext(ctx, u, header)
		if err == nil {
			c.Close()
			t.Fatalf("upgrade of %s accepted", redactURL(u))
		}
		if resp == nil {
			t.Fatalf("no answer: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
			t.Fatalf("%d answer is not Direct Line-shaped: %q", resp.StatusCode, b)
		}
		return resp.StatusCode, e.Error.Message
	}

	t.Run("sse_only", func(t *testing.T) {
		h := newHarness(t, harnessOptions{gateway: gateway.Config{SSEOnly: true}})
		conv := h.startAsDirectLineJS(t)
		if !strings.HasPrefix(conv.StreamURL, "http://") {
			t.Fatalf("SSE only, DirectLineJS still got %s", redactURL(conv.StreamURL))
		}
		u := "ws" + strings.TrimPrefix(conv.StreamURL, "http")
		if st, msg := refusedStatus(t, u, nil); st != http.StatusBadRequest || !strings.Contains(msg, "websocket_streams") {
			t.Fatalf("%d %q", st, msg)
		}
		if n := h.mgr.Sessions(); n != 0 {
			t.Fatalf("%d sessions behind a refused upgrade", n)
		}
		if !h.logs.Contains(`"reason":"disabled"`) {
			t.Fatal("refusal not logged")
		}
	})

	h := newHarness(t, harnessOptions{gateway: gateway.Config{AllowedOrigins: []string{"https://chat.example"}}})
	conv := h.startAsDirectLineJS(t)
	origin := func(o string) http.Header { return http.Header{"Origin": {o}} }
	for _, tc := range []struct {
		name   string
		url    string
		header http.Header
		status int
	}{
		{"foreign origin", conv.StreamURL, origin("https://evil.example"), http.StatusForbidden},
		{"bad token", strings.Replace(conv.StreamURL, "t=", "t=x", 1), nil, http.StatusForbidden},
		{"no token", redactURL(conv.StreamURL), nil, http.StatusUnauthorized},
		{"unknown conversation", strings.Replace(conv.StreamURL, conv.ConversationID, "nope", 1), nil, http.StatusForbidden},
	} {
		if st, msg := refusedStatus(t, tc.url, tc.header); st != tc.status {
			t.Errorf("%s: %d %q, want %d", tc.name, st, msg, tc.status)
		}
	}
	// Allowed and same origins are served.
	wsDial(ctx, t, conv.StreamURL, origin("https://chat.example")).Close()
	wsDial(ctx, t, conv.StreamURL, origin(h.URL)).Close()

	// Handshakes the RFC refuses, sent by hand.
	path := strings.TrimPrefix(conv.StreamURL, "ws://"+strings.TrimPrefix(h.URL, "http://"))
	for _, tc := range []struct {
		name, headers string
		status        int
	}{
		{"version 8", "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", http.StatusUpgradeRequired},
		{"short key", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n", http.StatusBadRequest},
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(h.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n%s\r\n", path, tc.headers)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		conn.Close()
	}
}

// TestWebSocketSharesStreamCaps: the per-conversation stream cap counts
// SSE and WebSocket streams together.
func TestWebSocketSharesStreamCaps(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{gateway: gateway.Config{MaxStreamsPerConversation: 2}})
	ctx := testContext(t, 20*time.Second)
	conv := h.startAsDirectLineJS(t)
	h.open(ctx, h.streamURL(conv.ConversationID, conv.Token), nil)
	wsDial(ctx, t, conv.StreamURL, nil)
	_, resp, err := websocket.DefaultDialer.DialContext(ctx, conv.StreamURL, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third stream of a conversation capped at 2: %v (%s)", err, respSummary(resp))
	}
}

// TestWebSocketEndsLikeDirectLine: a conversation the bot ended closes
// its WebSocket streams normally; an expired token closes them as a
// policy violation; a gateway shutting down closes them as going away.
// DirectLineJS reconnects after any of them and learns the rest from the
// reconnect route.
func TestWebSocketEndsLikeDirectLine(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 20*time.Second)

	h := newHarness(t, harnessOptions{})
	_, _, body := h.do(http.MethodPost, "/v3/directline/tokens/generate", h.fake.Secret(), nil)
	var gen conversation
	_ = json.Unmarshal(body, &gen)
	conv := h.callAsDirectLineJS(t, http.MethodPost, "/v3/directline/conversations", gen.Token, http.StatusCreated)
	c := wsDial(ctx, t, conv.StreamURL, nil)
	h.post(conv.ConversationID, conv.Token, "hello")
	(&wsReader{t: t, c: c}).expectEchoes(ctx, "hello")
	h.fake.ExpireTokens()
	h.fake.DropSockets(conv.ConversationID)
	if code := closeCode(ctx, t, c); code != websocket.ClosePolicyViolation {
		t.Fatalf("expired token: closed with %d, want 1008", code)
	}

	bot := directlinetest.BotFunc(func(c *directlinetest.Conv, a map[string]any) {
		if a["text"] == "bye" {
			c.Send(map[string]any{"type": "endOfConversation", "from": map[string]any{"id": "bot"}})
		}
	})
	h2 := newHarness(t, harnessOptions{fake: []directlinetest.Option{directlinetest.WithBot(bot)}})
	conv2 := h2.startAsDirectLineJS(t)
	c2 := wsDial(ctx, t, conv2.StreamURL, nil)
	h2.post(conv2.ConversationID, conv2.Token, "bye")
	h2.fake.DropSockets(conv2.ConversationID) // after the end, Direct Line's socket closes
	if code := closeCode(ctx, t, c2); code != websocket.CloseNormalClosure {
		t.Fatalf("conversation ended: closed with %d, want 1000", code)
	}

	conv3 := h2.startAsDirectLineJS(t)
	c3 := wsDial(ctx, t, conv3.StreamURL, nil)
	h2.stop()
	if code := closeCode(ctx, t, c3); code != websocket.CloseGoingAway {
		t.Fatalf("shutdown: closed with %d, want 1001", code)
	}
}

// TestSlowWebSocketReaderIsDroppedOthersAreNot: a WebSocket client that
// stops reading is dropped as slow, as an SSE one is, once a write waits
// longer than the write timeout; one that keeps reading gets everything.
func TestSlowWebSocketReaderIsDroppedOthersAreNot(t *testing.T) {
	t.Parallel()
	obs := newHostileReasons()
	h := newHarness(t, harnessOptions{
		gateway: gateway.Config{Observer: obs, SSEWriteTimeout: 300 * time.Millisecond},
		session: session.Config{ReplayBuffer: 100_000},
	})
	ctx := testContext(t, 60*time.Second)
	conv := h.startAsDirectLineJS(t)
	wsDial(ctx, t, conv.StreamURL, nil) // a client that never reads
	reader := &wsReader{t: t, c: wsDial(ctx, t, conv.StreamURL, nil)}
	big := strings.Repeat("x", 16<<10)
	sent := 0
	for obs.count(sse.ReasonSlow) == 0 {
		if sent == 4000 {
			t.Fatalf("the slow reader was not dropped after %d messages of 16 KiB", sent)
		}
		if err := h.fake.Push(conv.ConversationID, fmt.Sprintf("%05d %s", sent, big)); err != nil {
			t.Fatal(err)
		}
		sent++
		if got := reader.next(ctx); !strings.HasPrefix(got.Text, fmt.Sprintf("%05d ", sent-1)) {
			t.Fatalf("the reading client got %.10q, want message %d", got.Text, sent-1)
		}
	}
	if n := obs.count(sse.ReasonSlow); n != 1 {
		t.Fatalf("%d streams dropped as slow, want only the one that stopped reading", n)
	}
}

// TestReconnectWithoutWatermarkStartsAtTheCall: a client joining with the
// reconnect route and no watermark (DirectLineJS given a conversationId:
// a second tab) gets what was said after its call, even before its
// stream opened, as Direct Line's own stream would give it.
func TestReconnectWithoutWatermarkStartsAtTheCall(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t, 20*time.Second)
	conv := h.startAsDirectLineJS(t)
	first := &wsReader{t: t, c: wsDial(ctx, t, conv.StreamURL, nil)}
	h.post(conv.ConversationID, conv.Token, "before the second tab")
	first.expectEchoes(ctx, "before the second tab")

	second := h.reconnectAsDirectLineJS(t, conv, "")
	h.post(conv.ConversationID, conv.Token, "between the call and the stream")
	first.expectEchoes(ctx, "between the call and the stream")
	r := &wsReader{t: t, c: wsDial(ctx, t, second.StreamURL, nil)}
	if a := r.next(ctx); a.Text != "between the call and the stream" {
		t.Fatalf("the second tab's first activity %q, want the one posted after its call", a.Text)
	}
	r.expectEchoes(ctx, "between the call and the stream")
}
