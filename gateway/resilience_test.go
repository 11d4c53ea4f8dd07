package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sony/gobreaker/v2"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/metrics"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse/ssetest"
	"github.com/dlsse/dlsse/upstream"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// Resilience, end to end over real sockets: the circuit breaker in front of
// Direct Line, token lifetime, graceful shutdown, metrics, and a reconnect
// storm. Conditions are awaited through the fake's WaitFor, SSE events, or
// waitFor polling with a deadline; nothing sleeps to let time pass.

// ---------------------------------------------------------------------------
// Helpers

// upstreamCall is one HTTP request the gateway's upstream client sent.
type upstreamCall struct {
	method string
	path   string
	auth   string // the Authorization header, compared, never logged
	at     time.Time
}

// reconnect reports GET /v3/directline/conversations/{id}: Direct Line's
// reconnect call.
func (c upstreamCall) reconnect() bool {
	const prefix = "/v3/directline/conversations/"
	return c.method == http.MethodGet && strings.HasPrefix(c.path, prefix) &&
		!strings.Contains(c.path[len(prefix):], "/")
}

// String leaves the credential out of failure messages.
func (c upstreamCall) String() string {
	return c.method + " " + c.path + " at " + c.at.Format("15:04:05.000")
}

func (c upstreamCall) conversationID() string {
	rest := strings.TrimPrefix(c.path, "/v3/directline/conversations/")
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// recordingTransport is the upstream client's HTTP transport in these
// tests: it records every REST request Direct Line is sent (WebSocket
// dials do not go through it) and can hold the first POST of an activity
// until released, to keep a REST call in flight deterministically.
type recordingTransport struct {
	base *http.Transport

	mu    sync.Mutex
	calls []upstreamCall
	gate  *callGate
}

// callGate holds the first POST /activities that passes.
type callGate struct {
	entered chan struct{} // closed when the held call arrived
	release chan struct{} // close to let it go on
	used    bool
}

func newRecordingTransport(t *testing.T) *recordingTransport {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 256
	t.Cleanup(base.CloseIdleConnections) // registered first: runs after the harness stopped
	return &recordingTransport{base: base}
}

// holdFirstPost arms the gate; the returned release must be called (it is
// also called at cleanup).
func (rt *recordingTransport) holdFirstPost(t *testing.T) (entered <-chan struct{}, release func()) {
	g := &callGate{entered: make(chan struct{}), release: make(chan struct{})}
	rt.mu.Lock()
	rt.gate = g
	rt.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(g.release) }) }
	t.Cleanup(release)
	return g.entered, release
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	call := upstreamCall{method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization"), at: time.Now()}
	rt.mu.Lock()
	rt.calls = append(rt.calls, call)
	var hold *callGate
	if g := rt.gate; g != nil && !g.used && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/activities") {
		g.used = true
		hold = g
	}
	rt.mu.Unlock()
	if hold != nil {
		close(hold.entered)
		select {
		case <-hold.release:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return rt.base.RoundTrip(r)
}

// snapshot returns a copy of the calls recorded so far.
func (rt *recordingTransport) snapshot() []upstreamCall {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.calls)
}

func (rt *recordingTransport) count() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return len(rt.calls)
}

// tripAfter3 is the breaker policy of these tests: three consecutive
// failures open it for open.
func tripAfter3(open time.Duration) gobreaker.Settings {
	return gobreaker.Settings{
		Timeout:     open,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
	}
}

func statusOf(t *testing.T, ev ssetest.Event) session.Status {
	t.Helper()
	var st session.Status
	if err := json.Unmarshal([]byte(ev.Data), &st); err != nil {
		t.Fatalf("status data is not JSON: %q", ev.Data)
	}
	return st
}

// readStatesUntil reads a stream until a status event with state want and
// returns the states seen on the way. Any activity before it fails the
// test: nothing may be delivered while the upstream is away.
func readStatesUntil(ctx context.Context, t *testing.T, s *ssetest.Stream, want session.State) []session.State {
	t.Helper()
	var states []session.State
	for {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for status %q (seen %v): %v", want, states, err)
		}
		switch ev.Name {
		case "status":
			st := statusOf(t, ev)
			states = append(states, st.State)
			if st.State == want {
				return states
			}
			if st.State == session.StateOnline || st.State == session.StateEnded {
				t.Fatalf("status %q while waiting for %q (seen %v)", st.State, want, states)
			}
		case "activity":
			t.Fatalf("activity %s arrived while waiting for status %q (seen %v)", ev.Data, want, states)
		case "error":
			t.Fatalf("error event %s while waiting for status %q (seen %v)", ev.Data, want, states)
		}
	}
}

// errorCode reads the code of a Direct Line error body.
func errorCodeOf(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" {
		t.Fatalf("body %q is not a Direct Line error envelope", body)
	}
	return e.Error.Code
}

func (h *harness) postPath(conv string) string {
	return "/v3/directline/conversations/" + conv + "/activities"
}

func userMessage(text string) map[string]any {
	return map[string]any{"type": "message", "from": map[string]any{"id": "user1"}, "text": text}
}

// readyz returns the status of GET /readyz.
func (h *harness) readyz() int {
	h.t.Helper()
	status, _, _ := h.do(http.MethodGet, "/readyz", "", nil)
	return status
}

// ---------------------------------------------------------------------------
// 1. Circuit breaker

// TestBreakerOpensServesUnavailableAndRecovers drives the breaker through
// open and back to closed with a live subscriber: Direct Line fails the
// session's reconnects until the breaker opens; meanwhile REST calls are
// refused without reaching Direct Line, /readyz says not ready, a new
// stream gets a 200 that ends, and the live subscriber is told unavailable,
// then online, and gets what was said meanwhile exactly once.
func TestBreakerOpensServesUnavailableAndRecovers(t *testing.T) {
	t.Parallel()
	rt := newRecordingTransport(t)
	const open = time.Second
	h := newHarness(t, harnessOptions{upstream: upstream.Config{Transport: rt, Breaker: tripAfter3(open)}})
	ctx := testContext(t, 15*time.Second)

	conv := h.start()
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	h.fake.Push(conv.ConversationID, "before")
	expectTexts(ctx, t, s, []string{"before"})
	// A conversation no session holds and no offer covers (as after a
	// gateway restart), for the new stream below.
	otherID, otherToken := h.fake.NewConversation()

	// The session's reconnects fail three times: the breaker opens.
	h.fake.FailNext(3, http.StatusBadGateway, "BotError", "")
	h.fake.DropSockets(conv.ConversationID)
	states := readStatesUntil(ctx, t, s, session.StateUnavailable)
	if states[0] != session.StateReconnecting {
		t.Errorf("states %v: want reconnecting first", states)
	}
	if got := h.up.BreakerState(); got != gobreaker.StateOpen {
		t.Fatalf("breaker %v after three 502s, want open", got)
	}
	openedAt := time.Now()
	stillOpen := func(what string) {
		t.Helper()
		if h.up.BreakerState() != gobreaker.StateOpen {
			t.Fatalf("the breaker left the open state (after %v) before %s was checked: the test ran too slowly for its %v open period",
				time.Since(openedAt).Round(time.Millisecond), what, open)
		}
	}

	// (d) A new stream while open: 200, retry hint, unavailable, end.
	callsBefore, statsBefore := rt.count(), h.fake.Stats()
	ns, err := ssetest.Open(ctx, h.streamURL(otherID, otherToken), nil)
	if err != nil {
		t.Fatalf("new stream while the breaker is open: %v, want 200 (EventSource gives up on anything else)", err)
	}
	t.Cleanup(ns.Close)
	ev, err := ns.Next(ctx)
	if err != nil || ev.Name != "status" {
		t.Fatalf("new stream: first event %+v, %v; want a status", ev, err)
	}
	if st := statusOf(t, ev); st.State != session.StateUnavailable || st.RetryIn <= 0 {
		t.Errorf("new stream status %+v, want unavailable with retryIn", st)
	}
	if ev, err := ns.Next(ctx); !errors.Is(err, ssetest.ErrEOF) {
		t.Errorf("new stream went on (%+v, %v), want it to end", ev, err)
	}
	if ns.Retry() < gateway.DefaultRetry {
		t.Errorf("new stream retry hint %v, want at least the configured %v", ns.Retry(), gateway.DefaultRetry)
	}
	stillOpen("the new stream")

	// (a) REST calls are refused by the gateway itself.
	for _, c := range []struct {
		name, method, path string
		body               any
	}{
		{"post activity", http.MethodPost, h.postPath(conv.ConversationID), userMessage("refused")},
		{"start", http.MethodPost, "/v3/directline/conversations", nil},
		{"reconnect", http.MethodGet, "/v3/directline/conversations/" + conv.ConversationID + "?watermark=1", nil},
	} {
		cred := conv.Token
		if c.name == "start" {
			cred = h.fake.Secret()
		}
		status, header, body := h.do(c.method, c.path, cred, c.body)
		if status != http.StatusServiceUnavailable {
			t.Errorf("%s while open: status %d %s, want 503", c.name, status, body)
			continue
		}
		ra, err := strconv.Atoi(header.Get("Retry-After"))
		if err != nil || ra < 1 || ra > int(open/time.Second)+1 {
			t.Errorf("%s while open: Retry-After %q, want whole seconds until the breaker lets a call through (1..%d)",
				c.name, header.Get("Retry-After"), int(open/time.Second)+1)
		}
		if code := errorCodeOf(t, body); code != "UpstreamUnavailable" {
			t.Errorf("%s while open: code %q, want UpstreamUnavailable", c.name, code)
		}
	}
	stillOpen("the REST calls")
	if n := rt.count() - callsBefore; n != 0 {
		t.Errorf("%d requests reached Direct Line while the breaker was open: %v", n, rt.snapshot()[callsBefore:])
	}
	if st := h.fake.Stats(); st.Posts != statsBefore.Posts || st.StartCalls != statsBefore.StartCalls ||
		st.ReconnectCalls != statsBefore.ReconnectCalls || st.ActivityGets != statsBefore.ActivityGets {
		t.Errorf("the fake served calls while the breaker was open: before %+v, after %+v", statsBefore, st)
	}

	// (b) Not ready while open.
	if status := h.readyz(); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d while the breaker is open, want 503", status)
	}
	stillOpen("/readyz")
	t.Logf("open-state checks done %v after the breaker opened (open period %v)", time.Since(openedAt).Round(time.Millisecond), open)

	// Said while Direct Line was away: delivered once it is back.
	h.fake.Push(conv.ConversationID, "during-1", "during-2")

	// (c) The live subscriber stayed, and comes back online.
	states = readStatesUntil(ctx, t, s, session.StateOnline)
	t.Logf("live subscriber: breaker open → %v after %v", states, time.Since(openedAt).Round(time.Millisecond))
	expectTexts(ctx, t, s, []string{"during-1", "during-2"})
	h.fake.Push(conv.ConversationID, "after")
	expectTexts(ctx, t, s, []string{"after"}) // and nothing repeated before it

	// (b) Ready again once the breaker closed.
	waitFor(t, 5*time.Second, "the breaker to close", func() bool { return h.up.BreakerState() == gobreaker.StateClosed })
	if status := h.readyz(); status != http.StatusOK {
		t.Errorf("/readyz = %d after the breaker closed, want 200", status)
	}
	h.post(conv.ConversationID, conv.Token, "through again")
	if got := h.fake.Stats().Posts; got != statsBefore.Posts+1 {
		t.Errorf("posts served = %d, want %d after recovery", got, statsBefore.Posts+1)
	}
}

// TestTooManyRequestsDoesNotTripBreaker: Direct Line's 429 says the service
// is up; it passes through with its Retry-After and never opens the
// breaker. The same number of 502s does (the control).
func TestTooManyRequestsDoesNotTripBreaker(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{upstream: upstream.Config{Breaker: tripAfter3(time.Minute)}})
	conv := h.start()

	h.fake.FailNext(5, http.StatusTooManyRequests, "TooManyRequests", "7")
	for i := range 5 {
		status, header, body := h.do(http.MethodPost, h.postPath(conv.ConversationID), conv.Token, userMessage("throttled"))
		if status != http.StatusTooManyRequests {
			t.Fatalf("call %d: status %d %s, want Direct Line's 429 passed through", i, status, body)
		}
		if ra := header.Get("Retry-After"); ra != "7" {
			t.Errorf("call %d: Retry-After %q, want Direct Line's \"7\"", i, ra)
		}
		if code := errorCodeOf(t, body); code != "TooManyRequests" {
			t.Errorf("call %d: code %q, want Direct Line's TooManyRequests", i, code)
		}
	}
	if got := h.up.BreakerState(); got != gobreaker.StateClosed {
		t.Fatalf("breaker %v after five 429s, want closed", got)
	}
	if status := h.readyz(); status != http.StatusOK {
		t.Errorf("/readyz = %d after 429s, want 200", status)
	}
	h.post(conv.ConversationID, conv.Token, "accepted")
	if got := h.fake.Stats().Posts; got != 1 {
		t.Errorf("posts served = %d, want 1", got)
	}

	// Control: three 503s in a row do open it.
	h.fake.FailNext(3, http.StatusServiceUnavailable, "ServiceError", "")
	for range 3 {
		if status, _, _ := h.do(http.MethodPost, h.postPath(conv.ConversationID), conv.Token, userMessage("x")); status != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want Direct Line's 503 passed through", status)
		}
	}
	status, header, body := h.do(http.MethodPost, h.postPath(conv.ConversationID), conv.Token, userMessage("refused"))
	if status != http.StatusServiceUnavailable || header.Get("Retry-After") == "" || errorCodeOf(t, body) != "UpstreamUnavailable" {
		t.Errorf("after three 503s: %d Retry-After %q %s, want 503 UpstreamUnavailable with Retry-After",
			status, header.Get("Retry-After"), body)
	}
}

// TestRefusedStreamRetryHintCoversBreakerOpenPeriod: a stream refused
// because the breaker is open is told to come back no sooner than the
// breaker lets a call through (refuseStream's max(Retry, RetryIn)), not
// after the much shorter default retry.
func TestRefusedStreamRetryHintCoversBreakerOpenPeriod(t *testing.T) {
	t.Parallel()
	const open = 10 * time.Second
	h := newHarness(t, harnessOptions{
		upstream: upstream.Config{Breaker: tripAfter3(open)},
		gateway:  gateway.Config{Retry: 500 * time.Millisecond, ShutdownJitter: time.Millisecond},
	})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	h.fake.FailNext(3, http.StatusServiceUnavailable, "ServiceError", "")
	for range 3 {
		h.do(http.MethodPost, h.postPath(conv.ConversationID), conv.Token, userMessage("x"))
	}
	if h.up.BreakerState() != gobreaker.StateOpen {
		t.Fatal("breaker not open")
	}
	id, token := h.fake.NewConversation()
	s, err := ssetest.Open(ctx, h.streamURL(id, token), nil)
	if err != nil {
		t.Fatalf("stream while open: %v, want 200", err)
	}
	t.Cleanup(s.Close)
	ev, err := s.NextNamed(ctx, "status")
	if err != nil {
		t.Fatal(err)
	}
	st := statusOf(t, ev)
	for err == nil {
		_, err = s.Next(ctx)
	}
	if !errors.Is(err, ssetest.ErrEOF) {
		t.Errorf("the refused stream did not end: %v", err)
	}
	if least := open / 2; s.Retry() < least || time.Duration(st.RetryIn)*time.Millisecond < least {
		t.Errorf("retry hint %v, status retryIn %dms; want at least %v (the breaker is open for %v)", s.Retry(), st.RetryIn, least, open)
	}
}

// ---------------------------------------------------------------------------
// 2. Token lifetime

// TestSessionRefreshesUpstreamTokenBeforeExpiry: a session started from a
// token that lives 2 s refreshes it before it expires, and after the
// original token expired it reconnects with the refreshed one.
func TestSessionRefreshesUpstreamTokenBeforeExpiry(t *testing.T) {
	t.Parallel()
	rt := newRecordingTransport(t)
	h := newHarness(t, harnessOptions{
		upstream: upstream.Config{Transport: rt},
		fake:     []directlinetest.Option{directlinetest.WithTokenTTL(2 * time.Second)},
	})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	if conv.ExpiresIn != 2 {
		t.Fatalf("expires_in = %d, want 2", conv.ExpiresIn)
	}
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	h.fake.Push(conv.ConversationID, "first")
	expectTexts(ctx, t, s, []string{"first"})

	wctx, cancel := context.WithTimeout(ctx, 4*time.Second) // refreshed at half its 2 s life
	defer cancel()
	if err := h.fake.WaitFor(wctx, func(st directlinetest.Stats) bool { return st.TokensRefreshed >= 1 }); err != nil {
		t.Fatalf("the session never refreshed its 2 s token: %v", err)
	}
	// The stream reads with the client's token, which the session's own
	// refresh does not extend: the client refreshes it through dlsse, as
	// its library does, and the stream is carried along.
	if status, _, body := h.do(http.MethodPost, "/v3/directline/tokens/refresh", conv.Token, nil); status != http.StatusOK {
		t.Fatalf("client refresh: %d %s", status, body)
	}
	// Until the original token is dead.
	path := "/v3/directline/conversations/" + conv.ConversationID + "/activities"
	waitFor(t, 5*time.Second, "the original token to expire", func() bool {
		status, _, body := h.do(http.MethodGet, path, conv.Token, nil)
		return status == http.StatusForbidden && strings.Contains(string(body), "TokenExpired")
	})

	mark := rt.count()
	h.fake.DropSockets(conv.ConversationID)
	states := readStatesUntil(ctx, t, s, session.StateOnline)
	if states[0] != session.StateReconnecting {
		t.Errorf("states %v: want reconnecting, then online", states)
	}
	h.fake.Push(conv.ConversationID, "after expiry")
	expectTexts(ctx, t, s, []string{"after expiry"})
	var reconnects int
	for _, c := range rt.snapshot()[mark:] {
		if c.reconnect() {
			reconnects++
			if c.auth == "Bearer "+conv.Token {
				t.Errorf("the session reconnected with the expired original token")
			}
		}
	}
	if reconnects == 0 {
		t.Errorf("no reconnect call after the drop")
	}
}

// TestExpiredCredentialsEndStreamOnceWithoutSpinning: with every token
// expired and no other credential, a drop ends the stream with one
// TokenExpired error event, the session retires, and Direct Line is asked
// a bounded number of times (once per credential), not in a loop.
func TestExpiredCredentialsEndStreamOnceWithoutSpinning(t *testing.T) {
	t.Parallel()
	rt := newRecordingTransport(t)
	h := newHarness(t, harnessOptions{
		upstream: upstream.Config{Transport: rt},
		fake:     []directlinetest.Option{directlinetest.WithTokenTTL(2 * time.Second)},
	})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	h.fake.Push(conv.ConversationID, "before")
	expectTexts(ctx, t, s, []string{"before"})

	h.fake.ExpireTokens()
	mark := rt.count()
	h.fake.DropSockets(conv.ConversationID)
	var errorEvents []string
	for {
		ev, err := s.Next(ctx)
		if errors.Is(err, ssetest.ErrEOF) {
			break
		}
		if err != nil {
			t.Fatalf("stream did not end: %v (error events %q)", err, errorEvents)
		}
		switch ev.Name {
		case "error":
			errorEvents = append(errorEvents, ev.Data)
		case "activity":
			t.Errorf("unexpected activity %s", ev.Data)
		}
	}
	if len(errorEvents) != 1 || !strings.Contains(errorEvents[0], `"TokenExpired"`) {
		t.Errorf("error events %q, want exactly one with code TokenExpired", errorEvents)
	}
	waitFor(t, 5*time.Second, "the session to retire", func() bool { return h.mgr.Sessions() == 0 })
	calls := rt.snapshot()[mark:]
	t.Logf("upstream calls after the drop: %d", len(calls))
	// The session holds one credential (the conversation token); it may
	// spend one call on it, maybe a second on a poll, never a loop.
	if len(calls) == 0 || len(calls) > 2 {
		t.Errorf("%d upstream calls after the drop, want 1..2: %v", len(calls), calls)
	}
	// The session is gone, so nothing can call again; the next attempt
	// gets the real 403 so a browser stops.
	_, err := ssetest.Open(ctx, conv.StreamURL, nil)
	var se *ssetest.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden {
		t.Errorf("next attempt: %v, want 403", err)
	}
}

// ---------------------------------------------------------------------------
// 3. Graceful shutdown

// TestShutdownEndsStreamsAndFinishesInFlightCalls: Shutdown (then Close)
// ends an open stream with a jittered retry hint while a REST call is held
// in flight upstream, and that call still completes with 200.
func TestShutdownEndsStreamsAndFinishesInFlightCalls(t *testing.T) {
	t.Parallel()
	rt := newRecordingTransport(t)
	const retry, jitter = time.Second, 10 * time.Minute // with 10 min of jitter, a hint equal to retry is a 1-in-600,000 event
	h := newHarness(t, harnessOptions{
		upstream: upstream.Config{Transport: rt},
		gateway:  gateway.Config{Retry: retry, ShutdownJitter: jitter},
	})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	if s.Retry() != retry {
		t.Fatalf("initial retry hint %v, want %v", s.Retry(), retry)
	}

	entered, release := rt.holdFirstPost(t)
	type result struct {
		status int
		body   []byte
		err    error
	}
	posted := make(chan result, 1)
	go func() {
		b, _ := json.Marshal(userMessage("in flight"))
		req, _ := http.NewRequest(http.MethodPost, h.URL+h.postPath(conv.ConversationID), strings.NewReader(string(b)))
		req.Header.Set("Authorization", "Bearer "+conv.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			posted <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		posted <- result{status: resp.StatusCode, body: body, err: err}
	}()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the POST never reached the upstream client")
	}

	stopped := make(chan struct{})
	go func() { h.stop(); close(stopped) }()

	// The stream ends while the call is still held.
	for {
		ev, err := s.Next(ctx)
		if errors.Is(err, ssetest.ErrEOF) {
			break
		}
		if err != nil {
			t.Fatalf("stream did not end on shutdown: %v", err)
		}
		if ev.Name == "activity" {
			t.Errorf("unexpected activity during shutdown: %s", ev.Data)
		}
	}
	if got := s.Retry(); got <= retry || got > retry+jitter {
		t.Errorf("last retry hint %v, want the jittered shutdown hint in (%v, %v]", got, retry, retry+jitter)
	}
	select {
	case r := <-posted:
		t.Fatalf("the held call finished before it was released: %+v", r)
	case <-stopped:
		t.Fatal("shutdown returned while a REST call was in flight")
	default:
	}

	release()
	r := <-posted
	if r.err != nil || r.status != http.StatusOK || !strings.Contains(string(r.body), `"id"`) {
		t.Errorf("in-flight call: %d %s %v, want 200 with the activity id", r.status, r.body, r.err)
	}
	select {
	case <-stopped:
	case <-ctx.Done():
		t.Fatal("shutdown did not return after the in-flight call finished")
	}
	if got := h.fake.Stats().Posts; got != 1 {
		t.Errorf("posts served upstream = %d, want 1", got)
	}
}

// TestShutdownDrainsThenEndsStreams: on Shutdown with a drain delay,
// /readyz answers 503 at once on new connections while the gateway keeps
// serving (a stream opened during the drain is a normal stream), then the
// streams end with a retry hint of at least the configured one, and
// Shutdown returns only after an in-flight call finished.
func TestShutdownDrainsThenEndsStreams(t *testing.T) {
	t.Parallel()
	rt := newRecordingTransport(t)
	const retry = time.Second
	h := newHarness(t, harnessOptions{
		upstream: upstream.Config{Transport: rt},
		gateway:  gateway.Config{Retry: retry, ShutdownJitter: time.Second, DrainDelay: 2 * time.Second},
	})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()

	entered, release := rt.holdFirstPost(t)
	posted := make(chan int, 1)
	go func() {
		b, _ := json.Marshal(userMessage("in flight"))
		req, _ := http.NewRequest(http.MethodPost, h.URL+h.postPath(conv.ConversationID), strings.NewReader(string(b)))
		req.Header.Set("Authorization", "Bearer "+conv.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			posted <- 0
			return
		}
		resp.Body.Close()
		posted <- resp.StatusCode
	}()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the POST never reached the upstream client")
	}

	shutdown := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdown <- h.gw.Shutdown(sctx)
	}()
	waitFor(t, 5*time.Second, "/readyz to answer 503 during the drain", func() bool {
		status, _, _ := h.do(http.MethodGet, "/readyz", "", nil)
		return status == http.StatusServiceUnavailable
	})
	// Still serving: a stream opened now is a normal one...
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	select {
	case err := <-shutdown:
		t.Fatalf("shutdown returned (%v) during the drain", err)
	default:
	}
	// ...and it ends when the drain is over, with a jittered retry hint.
	for {
		if _, err := s.Next(ctx); err != nil {
			if !errors.Is(err, ssetest.ErrEOF) {
				t.Fatalf("stream did not end after the drain: %v", err)
			}
			break
		}
	}
	if s.Retry() < retry {
		t.Errorf("retry hint at shutdown %v, want at least %v", s.Retry(), retry)
	}
	select {
	case err := <-shutdown:
		t.Fatalf("shutdown returned (%v) with a call in flight", err)
	default:
	}
	release()
	if status := <-posted; status != http.StatusOK {
		t.Errorf("in-flight call: %d, want 200", status)
	}
	select {
	case err := <-shutdown:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("shutdown did not return after the in-flight call finished")
	}
}

// ---------------------------------------------------------------------------
// 4. Metrics

// scrape reads /metrics through the gateway.
func (h *harness) scrape() promSet {
	h.t.Helper()
	status, _, body := h.do(http.MethodGet, "/metrics", "", nil)
	if status != http.StatusOK {
		h.t.Fatalf("/metrics: %d", status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		h.t.Fatalf("/metrics does not parse: %v", err)
	}
	return promSet(fams)
}

type promSet map[string]*dto.MetricFamily

// find returns the sample of name whose labels include want (pairs).
func (p promSet) find(name string, want ...string) *dto.Metric {
	fam := p[name]
	if fam == nil {
		return nil
	}
next:
	for _, m := range fam.GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is a counter's or gauge's value, -1 when the series is missing.
func (p promSet) value(name string, labels ...string) float64 {
	m := p.find(name, labels...)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

// count is a histogram's sample count, -1 when the series is missing.
func (p promSet) count(name string, labels ...string) float64 {
	m := p.find(name, labels...)
	if m == nil || m.Histogram == nil {
		return -1
	}
	return float64(m.Histogram.GetSampleCount())
}

// expect compares series to the values the scenario implies.
func (p promSet) expect(t *testing.T, when string, want map[string]float64) {
	t.Helper()
	for key, w := range want {
		name, labels := parseSeries(key)
		var got float64
		if strings.HasSuffix(name, "_count") {
			got = p.count(strings.TrimSuffix(name, "_count"), labels...)
		} else {
			got = p.value(name, labels...)
		}
		if got != w {
			t.Errorf("%s: %s = %v, want %v", when, key, got, w)
		}
	}
}

// parseSeries splits `name{a="x",b="y"}` into the name and label pairs.
func parseSeries(s string) (string, []string) {
	name, rest, ok := strings.Cut(s, "{")
	if !ok {
		return name, nil
	}
	var labels []string
	for _, kv := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
		k, v, _ := strings.Cut(kv, "=")
		labels = append(labels, k, strings.Trim(v, `"`))
	}
	return name, labels
}

// TestMetricsFollowAConversation wires metrics.New as cmd/dlsse does and
// checks what /metrics says through the gateway at each step of a
// conversation: start, stream, post, upstream drop and reconnect, client
// gone, resume from the replay log, idle teardown.
func TestMetricsFollowAConversation(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	h := newHarness(t, harnessOptions{
		upstream: upstream.Config{Hooks: m.UpstreamHooks()},
		session:  session.Config{Observer: m, IdleGrace: 200 * time.Millisecond},
		gateway:  gateway.Config{Observer: m, Metrics: m.Handler(), Heartbeat: 20 * time.Millisecond},
	})
	ctx := testContext(t, 10*time.Second)

	fresh := h.scrape()
	fresh.expect(t, "before anything", map[string]float64{
		`dlsse_sessions_open`:                               0,
		`dlsse_upstream_sockets_open`:                       0,
		`dlsse_sse_subscribers_open`:                        0,
		`dlsse_activities_received_total`:                   0,
		`dlsse_activities_delivered_total`:                  0,
		`dlsse_upstream_reconnects_total{reason="lost"}`:    0,
		`dlsse_sse_disconnects_total{reason="client_gone"}`: 0,
		`dlsse_breaker_state`:                               0,
		`dlsse_replay_total{result="hit"}`:                  0,
		`dlsse_replay_total{result="miss"}`:                 0,
	})

	conv := h.start()
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	h.post(conv.ConversationID, conv.Token, "hello")
	delivered := 0
	var helloID string
	for _, want := range []string{"message:hello", "typing:", "message:echo: hello"} {
		ev, err := s.NextNamed(ctx, "activity")
		if err != nil {
			t.Fatal(err)
		}
		var a activity
		_ = json.Unmarshal([]byte(ev.Data), &a)
		if got := a.Type + ":" + a.Text; got != want {
			t.Fatalf("activity %q, want %q", got, want)
		}
		if a.Text == "hello" {
			helloID = ev.ID
		}
		delivered++
	}

	drops := h.fake.Stats().SocketsOpened
	h.fake.DropSockets(conv.ConversationID)
	if states := readStatesUntil(ctx, t, s, session.StateOnline); states[0] != session.StateReconnecting {
		t.Errorf("states %v, want reconnecting then online", states)
	}
	if err := h.fake.WaitFor(ctx, func(st directlinetest.Stats) bool { return st.SocketsOpened > drops }); err != nil {
		t.Fatal(err)
	}
	h.fake.Push(conv.ConversationID, "after")
	expectTexts(ctx, t, s, []string{"after"})
	delivered++

	h.scrape().expect(t, "after the drop and reconnect", map[string]float64{
		`dlsse_sessions_open`:                              1,
		`dlsse_upstream_sockets_open`:                      1,
		`dlsse_sse_subscribers_open`:                       1,
		`dlsse_activities_received_total`:                  4, // hello, typing, echo, after
		`dlsse_activities_delivered_total`:                 float64(delivered),
		`dlsse_upstream_reconnects_total{reason="lost"}`:   1,
		`dlsse_upstream_reconnects_total{reason="closed"}`: 0,
		`dlsse_breaker_state`:                              0,
		`dlsse_upstream_request_duration_seconds_count{operation="start",status="201"}`:         1,
		`dlsse_upstream_request_duration_seconds_count{operation="post_activity",status="200"}`: 1,
		`dlsse_upstream_request_duration_seconds_count{operation="dial",status="101"}`:          2,
		`dlsse_upstream_request_duration_seconds_count{operation="reconnect",status="200"}`:     1,
	})

	// The client goes away; it comes back from the "hello" cursor, which
	// the replay log serves.
	s.Close()
	waitFor(t, 5*time.Second, "the gone client to be counted", func() bool {
		return h.scrape().value(`dlsse_sse_disconnects_total`, "reason", "client_gone") == 1
	})
	r := h.open(ctx, h.streamURL(conv.ConversationID, conv.Token), http.Header{"Last-Event-ID": {helloID}})
	expectTexts(ctx, t, r, []string{"echo: hello", "after"}) // typing is history to a resume
	delivered += 2
	h.scrape().expect(t, "after the resume", map[string]float64{
		`dlsse_sessions_open`:                                  1,
		`dlsse_sse_subscribers_open`:                           1,
		`dlsse_activities_received_total`:                      4,
		`dlsse_activities_delivered_total`:                     float64(delivered),
		`dlsse_replay_total{result="hit"}`:                     2, // the first stream's "~" and this resume
		`dlsse_replay_total{result="miss"}`:                    0,
		`dlsse_sse_disconnects_total{reason="client_gone"}`:    1,
		`dlsse_sse_disconnects_total{reason="slow"}`:           0,
		`dlsse_sse_disconnects_total{reason="shutdown"}`:       0,
		`dlsse_sse_disconnects_total{reason="ended"}`:          0,
		`dlsse_sse_disconnects_total{reason="upstream_error"}`: 0,
	})

	// The last client leaves: after the idle grace the session and its
	// socket are gone.
	r.Close()
	waitFor(t, 5*time.Second, "idle teardown in the gauges", func() bool {
		p := h.scrape()
		return p.value(`dlsse_sessions_open`) == 0 && p.value(`dlsse_upstream_sockets_open`) == 0 &&
			p.value(`dlsse_sse_subscribers_open`) == 0
	})
	h.scrape().expect(t, "after idle teardown", map[string]float64{
		`dlsse_sse_disconnects_total{reason="client_gone"}`: 2,
		`dlsse_upstream_reconnects_total{reason="lost"}`:    1, // an idle close is not a reconnect
		`dlsse_activities_delivered_total`:                  float64(delivered),
	})
}

// ---------------------------------------------------------------------------
// 5. Reconnect storm

// TestReconnectStormIsSpreadAndLosesNothing: 200 conversations, one
// subscriber each, all online; every upstream socket drops at once. Every
// subscriber is back online with what was said meanwhile, exactly once;
// each session makes one reconnect call, and full jitter spreads the calls
// over the backoff base instead of sending them together.
func TestReconnectStormIsSpreadAndLosesNothing(t *testing.T) {
	t.Parallel()
	const (
		n    = 200
		base = 500 * time.Millisecond
	)
	rt := newRecordingTransport(t)
	h := newHarness(t, harnessOptions{
		upstream: upstream.Config{Transport: rt},
		session:  session.Config{BackoffBase: base},
	})
	ctx := testContext(t, 30*time.Second)

	convs, streams := h.openLive(ctx, t, n)
	if st := h.fake.Stats(); st.SocketsOpen != n {
		t.Fatalf("sockets open %d, want %d", st.SocketsOpen, n)
	}

	statsBefore := h.fake.Stats()
	mark := rt.count()
	dropped := time.Now()
	if got := h.fake.DropSockets(""); got != n {
		t.Fatalf("dropped %d sockets, want %d", got, n)
	}
	for i := range convs {
		if err := h.fake.Push(convs[i].ConversationID, fmt.Sprintf("during-%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	// Each subscriber: reconnecting, online, then exactly its "during".
	type outcome struct {
		back time.Duration // drop → online and the activity said meanwhile
		err  error
	}
	results := make(chan outcome, n)
	for i, s := range streams {
		go func() {
			want := fmt.Sprintf("during-%d", i)
			online, got := false, false
			var first session.State
			for !online || !got {
				ev, err := s.Next(ctx)
				if err != nil {
					results <- outcome{err: fmt.Errorf("subscriber %d: %w", i, err)}
					return
				}
				switch ev.Name {
				case "status":
					var st session.Status
					_ = json.Unmarshal([]byte(ev.Data), &st)
					if first == "" {
						first = st.State
					}
					online = st.State == session.StateOnline
				case "activity":
					var a activity
					_ = json.Unmarshal([]byte(ev.Data), &a)
					if a.Text != want || got {
						results <- outcome{err: fmt.Errorf("subscriber %d: activity %q, want %q once", i, a.Text, want)}
						return
					}
					got = true
				case "error":
					results <- outcome{err: fmt.Errorf("subscriber %d: error event %s", i, ev.Data)}
					return
				}
			}
			if first != session.StateReconnecting {
				results <- outcome{err: fmt.Errorf("subscriber %d: first status %q, want reconnecting", i, first)}
				return
			}
			results <- outcome{back: time.Since(dropped)}
		}()
	}
	var back []time.Duration
	for range n {
		r := <-results
		if r.err != nil {
			t.Error(r.err)
			continue
		}
		back = append(back, r.back)
	}
	if t.Failed() {
		t.FailNow()
	}
	allBack := slices.Max(back)

	// Nothing repeated after "during", and the live path works.
	for i := range convs {
		if err := h.fake.Push(convs[i].ConversationID, fmt.Sprintf("post-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range streams {
		expectTexts(ctx, t, s, []string{fmt.Sprintf("post-%d", i)})
	}

	// The reconnect calls.
	var times []time.Duration
	first := make(map[string]time.Duration, n)
	for _, c := range rt.snapshot()[mark:] {
		if !c.reconnect() {
			continue
		}
		d := c.at.Sub(dropped)
		times = append(times, d)
		if _, ok := first[c.conversationID()]; !ok {
			first[c.conversationID()] = d
		}
	}
	slices.Sort(times)
	perSession := float64(len(times)) / n
	fakeDelta := h.fake.Stats().ReconnectCalls - statsBefore.ReconnectCalls
	peak, peakAt := 0, time.Duration(0)
	for i, j := 0, 0; i < len(times); i++ {
		for times[i]-times[j] >= 50*time.Millisecond {
			j++
		}
		if i-j+1 > peak {
			peak, peakAt = i-j+1, times[j]
		}
	}
	delays := make([]time.Duration, 0, len(first))
	for _, d := range first {
		delays = append(delays, d)
	}
	slices.Sort(delays)
	pct := func(p float64) time.Duration {
		if len(delays) == 0 {
			return 0
		}
		return delays[min(len(delays)-1, int(p*float64(len(delays))))].Round(time.Millisecond)
	}
	slices.Sort(back)
	t.Logf("storm: %d sessions dropped at once, backoff base %v", n, base)
	t.Logf("  all back online with the activity said meanwhile after %v (p50 %v)",
		allBack.Round(time.Millisecond), back[len(back)/2].Round(time.Millisecond))
	t.Logf("  reconnect calls: %d (%.2f per session; the fake served %d), sessions that reconnected: %d",
		len(times), perSession, fakeDelta, len(first))
	t.Logf("  peak %d calls in a 50 ms window (from %v after the drop); per-session reconnect delay p50 %v, p99 %v, max %v",
		peak, peakAt.Round(time.Millisecond), pct(0.50), pct(0.99), pct(1))

	if len(first) != n {
		t.Errorf("%d sessions made a reconnect call, want all %d", len(first), n)
	}
	if perSession > 1.1 {
		t.Errorf("%.2f reconnect calls per session, want at most 1.1", perSession)
	}
	if fakeDelta < n {
		t.Errorf("the fake served %d reconnects, want %d", fakeDelta, n)
	}
	if peak > len(times)/3 {
		t.Errorf("%d of %d reconnect calls fell in one 50 ms window: not spread by jitter", peak, len(times))
	}
	// Full jitter: delays spread over [0, base], not bunched at either end.
	if p50 := pct(0.50); p50 < base/10 || p50 > base*9/10 {
		t.Errorf("median reconnect delay %v, want it well inside [0, %v] (full jitter)", p50, base)
	}
}
