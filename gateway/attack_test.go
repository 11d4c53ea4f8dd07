package gateway_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse/ssetest"
	"github.com/dlsse/dlsse/upstream"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// The findings of the second adversarial review, each reproduced black-box
// over real sockets: what a hostile client sends, and what must hold for
// everybody else.

// Finding 1: a credential that is not one never reaches Direct Line, and
// nothing a client sends opens the breaker for everyone.
func TestAttackMalformedCredentialsNeverMoveTheBreaker(t *testing.T) {
	t.Parallel()
	up := newSecUpstream(t)
	h := newHarness(t, harnessOptions{upstream: upstream.Config{Transport: up}})
	conv := h.start()
	mark := len(up.snapshot())
	addr := strings.TrimPrefix(h.URL, "http://")
	stream := "/v3/directline/conversations/" + conv.ConversationID + "/stream"
	post := "/v3/directline/conversations/" + conv.ConversationID + "/activities"
	for i := range 3 { // more than the breaker's five failures in all
		for _, q := range []string{"%0A", "%0D%0A", "a%20b", "%00", "%7F", "x%22y", "%C3%A9", "a=b=c", "=abc"} {
			status, header, body := h.secRefusal(http.MethodGet, stream+"?t="+q, nil, nil)
			secExpectError(t, fmt.Sprintf("#%d stream t=%s", i, q), status, header, body, http.StatusUnauthorized, "BadArgument")
		}
		// Header values Go's client would refuse to send, on every route.
		for _, auth := range []string{"Bearer a\x01b", "Bearer \x7f", "Basic Zm9vOmJhcg==", "Bearer", "Bearer a b"} {
			for _, route := range []string{"POST /v3/directline/conversations", "GET " + post, "GET " + stream,
				"POST /v3/directline/tokens/refresh", "GET /v3/directline/conversations/" + conv.ConversationID} {
				method, path, _ := strings.Cut(route, " ")
				resp, body := secRaw(t, addr, method+" "+path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nAuthorization: "+auth+"\r\n", nil, false)
				// 400 when the HTTP parser already refuses the header.
				if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
					t.Errorf("%s with Authorization %q: %d %s, want 401 or 400", route, auth, resp.StatusCode, body)
				}
			}
		}
	}
	if calls := up.snapshot()[mark:]; len(calls) != 0 {
		t.Errorf("malformed credentials reached Direct Line: %v", calls)
	}
	// A bot that fails on what a client posts: Direct Line answers 502,
	// and works.
	h.fake.FailNext(10, http.StatusBadGateway, "BotError", "")
	for range 10 {
		if status, _, _ := h.do(http.MethodPost, post, conv.Token, userMessage("poison")); status != http.StatusBadGateway {
			t.Fatalf("poison post: %d, want the bot's 502 passed through", status)
		}
	}
	if st := h.up.BreakerState(); st != gobreaker.StateClosed {
		t.Fatalf("breaker %v after client input, want closed", st)
	}
	if status := h.readyz(); status != http.StatusOK {
		t.Errorf("/readyz %d, want 200", status)
	}
	h.post(conv.ConversationID, conv.Token, "still served")
}

// Finding 2: behind a trusted proxy the client is the rightmost address the
// proxy did not add; whatever the client wrote further left, or an empty or
// garbage header, names nobody new. Untrusted peers' X-Forwarded-* are
// ignored entirely.
func TestAttackForwardedForCannotDodgePerAddressLimits(t *testing.T) {
	t.Parallel()
	const perMinute = 3
	h := newHarness(t, harnessOptions{fake: []directlinetest.Option{directlinetest.WithSecret("the-bots-secret")}, gateway: gateway.Config{
		TrustedProxies:       []string{"127.0.0.1", "10.9.0.0/16"},
		DirectLineSecret:     "the-bots-secret",
		TokenOrigins:         []string{"*"},
		TokensPerIPPerMinute: perMinute,
	}})
	mint := func(xff ...string) int {
		t.Helper()
		header := http.Header{}
		for _, v := range xff {
			header.Add("X-Forwarded-For", v)
		}
		status, _, _ := h.secRequest(http.MethodPost, "/v3/directline/tokens/generate", header, nil)
		return status
	}
	// The proxy (127.0.0.1, trusted) appended the real client 203.0.113.7,
	// after a chain of its own (10.9.x) and whatever the client sent.
	for i := range perMinute {
		if status := mint(fmt.Sprintf("198.51.100.%d, 203.0.113.7, 10.9.0.1", i)); status != http.StatusOK {
			t.Fatalf("token %d: %d", i, status)
		}
	}
	for _, spoof := range [][]string{
		{"198.51.100.99, 203.0.113.7, 10.9.0.1"},
		{"1.1.1.1", "203.0.113.7, 10.9.0.1"}, // as two header lines (HAProxy's option forwardfor)
		{"2001:db8::1, 203.0.113.7"},
		{"garbage, 203.0.113.7"},
		{"[2001:db8::9]:443, 203.0.113.7:5555"}, // with ports, as some proxies write
	} {
		if status := mint(spoof...); status != http.StatusTooManyRequests {
			t.Errorf("X-Forwarded-For %q: %d, want 429 (the same client)", spoof, status)
		}
	}
	// Empty or garbage: the trusted proxy itself is the client, one
	// bucket for all of them.
	ok := 0
	for i := range 10 {
		xff := []string{"", "not-an-ip", ",,,", strings.Repeat("x", 7000)}[i%4]
		if mint(xff) == http.StatusOK {
			ok++
		}
	}
	if ok > perMinute {
		t.Errorf("%d tokens with empty or garbage X-Forwarded-For, want at most %d", ok, perMinute)
	}

	// An untrusted peer's headers shape nothing.
	plain := newHarness(t, harnessOptions{fake: []directlinetest.Option{directlinetest.WithSecret("s")}, gateway: gateway.Config{
		DirectLineSecret: "s", TokenOrigins: []string{"*"}, TokensPerIPPerMinute: perMinute,
	}})
	minted := 0
	for i := range 10 {
		header := http.Header{"X-Forwarded-For": {fmt.Sprintf("192.0.2.%d", i)}}
		if status, _, _ := plain.secRequest(http.MethodPost, "/v3/directline/tokens/generate", header, nil); status == http.StatusOK {
			minted++
		}
	}
	if minted != perMinute {
		t.Errorf("%d tokens from one untrusted peer with varying X-Forwarded-For, want %d", minted, perMinute)
	}
	header := http.Header{
		"Authorization":     {"Bearer " + plain.fake.Secret()},
		"X-Forwarded-Host":  {"attacker.example"},
		"X-Forwarded-Proto": {"javascript"},
	}
	_, _, body := plain.secRequest(http.MethodPost, "/v3/directline/conversations", header, nil)
	var c conversation
	_ = json.Unmarshal(body, &c)
	if !strings.HasPrefix(c.StreamURL, plain.URL+"/") {
		t.Errorf("untrusted X-Forwarded-Host/-Proto shaped streamUrl %q", c.StreamURL)
	}
	// A trusted proxy's are believed, when they are a scheme and a host.
	header.Set("Authorization", "Bearer "+h.fake.Secret())
	header.Set("X-Forwarded-Proto", "https")
	header.Set("X-Forwarded-Host", "chat.example:8443")
	_, _, body = h.secRequest(http.MethodPost, "/v3/directline/conversations", header, nil)
	_ = json.Unmarshal(body, &c)
	if !strings.HasPrefix(c.StreamURL, "https://chat.example:8443/v3/directline/") {
		t.Errorf("trusted proxy's X-Forwarded-Host/-Proto: streamUrl %q", c.StreamURL)
	}
	header.Set("X-Forwarded-Proto", "javascript")
	header.Set("X-Forwarded-Host", "a b/c")
	_, _, body = h.secRequest(http.MethodPost, "/v3/directline/conversations", header, nil)
	_ = json.Unmarshal(body, &c)
	if !strings.HasPrefix(c.StreamURL, h.URL+"/") {
		t.Errorf("a trusted proxy's garbage shaped streamUrl %q", c.StreamURL)
	}
}

// Finding 3: a stream reads with its credential's rights, and they end when
// the token expires (one error event, then the end), unless the client
// refreshed the token through dlsse, which carries its streams along.
func TestAttackStreamEndsWhenItsTokenExpires(t *testing.T) {
	t.Parallel()
	const ttl = 3 * time.Second
	m := newHostileReasons()
	h := newHarness(t, harnessOptions{
		fake:    []directlinetest.Option{directlinetest.WithTokenTTL(ttl)},
		gateway: gateway.Config{Observer: m},
	})
	ctx := testContext(t, 15*time.Second)

	due := time.Now().Add(ttl) // no later than the tokens' expiry
	leaked := h.start()
	carried := h.start()
	a := h.open(ctx, leaked.StreamURL, nil)
	b := h.open(ctx, carried.StreamURL, nil)
	waitOnline(ctx, t, a)
	waitOnline(ctx, t, b)
	// b's client refreshes through dlsse, as DirectLineJS does, and keeps
	// its stream. It does so once its sessions refreshed their own tokens
	// (at half their life), so that the new token outlives the old one by
	// half a lifetime.
	if err := h.fake.WaitFor(ctx, func(st directlinetest.Stats) bool { return st.TokensRefreshed >= 2 }); err != nil {
		t.Fatal(err)
	}
	status, _, body := h.do(http.MethodPost, "/v3/directline/tokens/refresh", carried.Token, nil)
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %s", status, body)
	}
	ev, err := a.NextNamed(ctx, "error")
	if err != nil {
		t.Fatalf("the expired token's stream: %v, want an error event", err)
	}
	if code, _ := secDLError([]byte(ev.Data)); code != "TokenExpired" {
		t.Errorf("error event %s, want TokenExpired", ev.Data)
	}
	if _, err := a.Next(ctx); !errors.Is(err, ssetest.ErrEOF) {
		t.Errorf("the stream went on after its token expired: %v", err)
	}
	if late := time.Since(due); late < 0 {
		t.Errorf("the stream ended %v before its token expired", -late)
	} else {
		t.Logf("stream ended %v after its token expired", late)
	}
	if got := m.count(session.ReasonTokenExpired); got != 1 {
		t.Errorf("%d streams ended as token_expired, want 1", got)
	}
	// The carried stream outlives the token it was opened with.
	waitFor(t, 5*time.Second, "the old token to expire", func() bool {
		status, _, _ := h.do(http.MethodGet, "/v3/directline/conversations/"+carried.ConversationID+"/activities", carried.Token, nil)
		return status == http.StatusForbidden
	})
	h.fake.Push(carried.ConversationID, "after the old token")
	expectTexts(ctx, t, b, []string{"after the old token"})
}

// A stream whose token dlsse never saw an answer about (a secret, a token
// from the bot's own token service) is re-checked with Direct Line, and
// ends when Direct Line refuses it.
func TestAttackStreamWithUnknownLifetimeIsRechecked(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{session: session.Config{Reverify: 100 * time.Millisecond}})
	ctx := testContext(t, 10*time.Second)
	id, token := h.fake.NewConversation()
	s := h.open(ctx, h.streamURL(id, token), nil)
	waitOnline(ctx, t, s)
	h.fake.Push(id, "while valid")
	expectTexts(ctx, t, s, []string{"while valid"})
	h.fake.ExpireTokens()
	ev, err := s.NextNamed(ctx, "error")
	if err != nil {
		t.Fatalf("%v, want an error event once Direct Line refuses the token", err)
	}
	if code, _ := secDLError([]byte(ev.Data)); code != "TokenExpired" {
		t.Errorf("error event %s, want TokenExpired", ev.Data)
	}
}

// Finding 4 and 5: streams with credentials Direct Line refuses take no
// slot and open no session, however many come and however slow Direct
// Line is; refusals are remembered; questions are shared and rate-limited.
func TestAttackUnverifiedStreamsTakeNoSlotsAndCostBoundedCalls(t *testing.T) {
	t.Parallel()
	up := newSecUpstream(t)
	h := newHarness(t, harnessOptions{
		upstream: upstream.Config{Transport: up},
		session:  session.Config{VerifyRate: 1e-6, VerifyBurst: 20}, // a burst, then nothing
		gateway:  gateway.Config{MaxStreamsPerConversation: 5},
	})
	ctx := testContext(t, 20*time.Second)
	id, token := h.fake.NewConversation()
	h.fake.SetLatency(300 * time.Millisecond)

	// 15 strangers with different garbage, all in flight together.
	var wg sync.WaitGroup
	refused := make(chan int, 15)
	for i := range 15 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ssetest.Open(ctx, h.streamURL(id, fmt.Sprintf("garbage%d", i)), nil)
			var se *ssetest.StatusError
			if errors.As(err, &se) {
				refused <- se.Status
			}
		}()
	}
	waitFor(t, 5*time.Second, "the strangers' checks in flight", func() bool { return len(up.snapshot()) >= 15 })
	if n := h.mgr.Sessions(); n != 0 {
		t.Errorf("%d sessions opened for unverified credentials", n)
	}
	owner := h.open(ctx, h.streamURL(id, token), nil) // takes a slot: the strangers hold none
	h.fake.SetLatency(0)
	waitOnline(ctx, t, owner)
	wg.Wait()
	close(refused)
	for status := range refused {
		if status != http.StatusForbidden {
			t.Errorf("a stranger got %d, want 403", status)
		}
	}

	// The same garbage 100 times: one question.
	mark := len(up.snapshot())
	for range 100 {
		se := secRefused(ctx, t, "repeated garbage", h.URL+"/v3/directline/conversations/"+id+"/stream?t=garbage0", nil)
		if se.Status != http.StatusForbidden {
			t.Fatalf("repeated garbage: %d, want 403", se.Status)
		}
	}
	// 50 new garbage credentials at once: one question each, and no more
	// than the rate allows: the burst left is 20 - 16 = 4 (15 strangers
	// and the owner, whose token dlsse never saw in an answer).
	for i := range 50 {
		s, err := ssetest.Open(ctx, h.streamURL(id, fmt.Sprintf("fresh%d", i)), nil)
		if err == nil { // over the limit: 200, "unavailable", come back later
			s.Close()
		}
	}
	if calls := len(up.snapshot()) - mark; calls > 6 {
		t.Errorf("%d questions to Direct Line for 150 refused streams, want at most 6", calls)
	}
	// The owner's slot and session were never in danger.
	h.fake.Push(id, "owner still reads")
	expectTexts(ctx, t, owner, []string{"owner still reads"})
}

// Concurrent streams with one unknown credential share one question.
func TestAttackOneQuestionPerCredentialInFlight(t *testing.T) {
	t.Parallel()
	up := newSecUpstream(t)
	h := newHarness(t, harnessOptions{upstream: upstream.Config{Transport: up}})
	ctx := testContext(t, 10*time.Second)
	id, token := h.fake.NewConversation()
	h.fake.SetLatency(200 * time.Millisecond)
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s, err := ssetest.Open(ctx, h.streamURL(id, token), nil); err == nil {
				s.Close()
			} else {
				t.Errorf("stream: %v", err)
			}
		}()
	}
	wg.Wait()
	verifications := 0
	for _, c := range up.snapshot() {
		if strings.HasSuffix(c.path, "/activities") && c.method == http.MethodGet {
			verifications++
		}
	}
	// One question, plus the session's own polls (at most its watermark
	// poll and a catch-up).
	if verifications > 3 {
		t.Errorf("%d authorised reads for 30 streams with one credential, want one question", verifications)
	}
}

// Finding 6: routing is exact, so a proxy's rule for /metrics holds.
func TestAttackPrivateRoutesAreExact(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{gateway: gateway.Config{Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "metrics here")
	})}})
	if status, _, body := h.secRequest(http.MethodGet, "/metrics", nil, nil); status != http.StatusOK || string(body) != "metrics here" {
		t.Fatalf("/metrics: %d %s", status, body)
	}
	addr := strings.TrimPrefix(h.URL, "http://")
	for _, path := range []string{"/METRICS", "/Metrics", "/metrics/", "/metrics//", "//metrics", "/./metrics",
		"/x/../metrics", "/%6Detrics", "/metrics?x", "/Healthz", "/v3/DirectLine/conversations", "/v3/directline/conversations/"} {
		resp, body := secRaw(t, addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\n", nil, false)
		status, header := resp.StatusCode, resp.Header
		if path == "/metrics?x" { // a query is not another route
			if status != http.StatusOK {
				t.Errorf("%s: %d", path, status)
			}
			continue
		}
		if strings.Contains(string(body), "metrics here") {
			t.Errorf("%s served the metrics", path)
		}
		secExpectError(t, path, status, header, body, http.StatusNotFound, "NotFound")
	}
}

// Finding 7: a client's watermark never becomes the session's starting
// point: the socket is reopened from what Direct Line vouched for, and the
// bot's message sent during a drop arrives.
func TestAttackClientWatermarkNeverStartsTheSession(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t, 10*time.Second)
	id, token := h.fake.NewConversation()
	h.fake.Push(id, "old")
	status, _, body := h.do(http.MethodGet, "/v3/directline/conversations/"+id+"?watermark=9999", token, nil)
	if status != http.StatusOK {
		t.Fatalf("reconnect: %d %s", status, body)
	}
	var rc conversation
	_ = json.Unmarshal(body, &rc)
	if u, err := url.Parse(rc.StreamURL); err != nil || u.Query().Get("watermark") != "9999" {
		t.Errorf("reconnect streamUrl %q, want it to carry the watermark Direct Line's did", rc.StreamURL)
	}
	s := h.open(ctx, rc.StreamURL, nil)
	waitOnline(ctx, t, s)
	opened := h.fake.Stats().SocketsOpened
	h.fake.DropSockets(id)
	h.fake.Push(id, "during the drop")
	if err := h.fake.WaitFor(ctx, func(st directlinetest.Stats) bool { return st.SocketsOpened > opened }); err != nil {
		t.Fatal(err)
	}
	h.fake.Push(id, "after")
	texts, _ := secReadUntil(ctx, t, s, "after")
	if !secEqual(texts, []string{"during the drop", "after"}) {
		t.Errorf("delivered %q, want [during the drop after]", texts)
	}
}

// Finding 8: a stream URL never carries the caller's credential; without a
// token in Direct Line's answer it carries none.
func TestAttackStreamURLNeverCarriesTheSecret(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{upstream: upstream.Config{Transport: tokenStripper{http.DefaultTransport}}})
	status, _, body := h.do(http.MethodPost, "/v3/directline/conversations", h.fake.Secret(), nil)
	if status != http.StatusCreated {
		t.Fatalf("start: %d %s", status, body)
	}
	if strings.Contains(string(body), h.fake.Secret()) || strings.Contains(string(body), url.QueryEscape(h.fake.Secret())) {
		t.Errorf("the answer carries the secret: %s", body)
	}
	var c conversation
	_ = json.Unmarshal(body, &c)
	u, err := url.Parse(c.StreamURL)
	if err != nil || u.Query().Has("t") || !strings.HasPrefix(c.StreamURL, h.URL+"/") {
		t.Errorf("streamUrl %q: want dlsse's, without a credential", c.StreamURL)
	}
	if !h.logs.Contains("answered without a token") {
		t.Errorf("no warning logged")
	}
}

// tokenStripper removes "token" from Direct Line's start answers.
type tokenStripper struct{ base http.RoundTripper }

func (s tokenStripper) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(r)
	if err != nil || r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/conversations") {
		return resp, err
	}
	var fields map[string]any
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_ = json.Unmarshal(b, &fields)
	delete(fields, "token")
	b, _ = json.Marshal(fields)
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	resp.ContentLength = int64(len(b))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// Finding 9: only the bot's endOfConversation ends the conversation for
// everyone; a participant's is an activity like any other.
func TestAttackOnlyTheBotEndsTheConversation(t *testing.T) {
	t.Parallel()
	bot := directlinetest.BotFunc(func(c *directlinetest.Conv, a map[string]any) {
		if a["text"] == "bye" {
			c.Send(map[string]any{"type": "endOfConversation", "from": map[string]any{"id": "bot"}})
		}
	})
	h := newHarness(t, harnessOptions{fake: []directlinetest.Option{directlinetest.WithBot(bot)}})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	for _, from := range []map[string]any{{"id": "mallory"}, {"id": "mallory2", "role": "user"}} {
		status, _, body := h.do(http.MethodPost, h.postPath(conv.ConversationID), conv.Token,
			map[string]any{"type": "endOfConversation", "from": from})
		if status != http.StatusOK {
			t.Fatalf("post: %d %s", status, body)
		}
	}
	for range 2 {
		if a, _ := nextActivity(ctx, t, s); a.Type != "endOfConversation" {
			t.Fatalf("got %s, want the participants' endOfConversation", a.Type)
		}
	}
	// Direct Line closes the socket after an end (as it may at any
	// time): the session reconnects, since the bot did not end it.
	h.fake.DropSockets(conv.ConversationID)
	if states := readStatesUntil(ctx, t, s, session.StateOnline); states[0] != session.StateReconnecting {
		t.Errorf("states %v after a participant's endOfConversation, want reconnecting, online", states)
	}
	h.fake.Push(conv.ConversationID, "still on")
	expectTexts(ctx, t, s, []string{"still on"})
	// The bot's does end it.
	h.post(conv.ConversationID, conv.Token, "bye")
	for a, _ := nextActivity(ctx, t, s); a.Type != "endOfConversation"; a, _ = nextActivity(ctx, t, s) {
	}
	h.fake.DropSockets(conv.ConversationID)
	for {
		ev, err := s.NextNamed(ctx, "status")
		if err != nil {
			t.Fatalf("no ended status: %v", err)
		}
		if statusOf(t, ev).State == session.StateEnded {
			break
		}
	}
	// An ended conversation answers garbage exactly as an unknown one:
	// no oracle.
	se := secRefused(ctx, t, "garbage on an ended conversation", h.streamURL(conv.ConversationID, "garbage"), nil)
	unknown := secRefused(ctx, t, "garbage on an unknown conversation", h.streamURL("NOSUCHCONVERSATION", "garbage"), nil)
	if se.Status != unknown.Status || se.Status != http.StatusForbidden {
		t.Errorf("garbage: %d on the ended conversation, %d on an unknown one; want the same 403", se.Status, unknown.Status)
	}
	if _, err := ssetest.Open(ctx, conv.StreamURL, nil); !isStatus(err, http.StatusNoContent) {
		t.Errorf("the conversation's own token after the end: %v, want 204", err)
	}
}

func isStatus(err error, status int) bool {
	var se *ssetest.StatusError
	return errors.As(err, &se) && se.Status == status
}

// Finding 9: a malformed request's error never echoes the request (which
// carries the credential), and a cursor of any shape Direct Line does not
// know is 400.
func TestAttackErrorsNeverEchoAndMalformedCursorsAre400(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	addr := strings.TrimPrefix(h.URL, "http://")
	const secret = "SUPERSECRETCREDENTIAL"
	for _, head := range []string{
		"GET /v3/directline/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nContent-Length: zz\r\n",
		"GET /v3/directline/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nBad Header: y\r\n",
		"GET /v3/directline/conversations HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\nAuthorization: Bearer " + secret + "\r\n",
		"POST /v3/directline/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nTransfer-Encoding: bogus\r\n",
	} {
		resp, body := secRaw(t, addr, head, nil, false)
		if resp.StatusCode/100 != 4 || strings.Contains(string(body), secret) || strings.Contains(string(body), "Authorization") {
			t.Errorf("malformed request: %d %s", resp.StatusCode, body)
		}
	}
	ctx := testContext(t, 10*time.Second)
	id, token := h.fake.NewConversation()
	for _, cursor := range []string{"zzz", "zzz~", "zzz~AAAAAAAAAAA"} {
		se := secRefused(ctx, t, "cursor "+cursor, h.streamURL(id, token)+"&lastEventId="+cursor, nil)
		if se.Status != http.StatusBadRequest {
			t.Errorf("cursor %q: %d %s, want 400", cursor, se.Status, se.Body)
		}
	}
}
