package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse/ssetest"
	"github.com/dlsse/dlsse/upstream"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

func TestStreamDeliversEchoWithSSEFraming(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	s := h.open(ctx, conv.StreamURL, nil)

	for name, want := range map[string]string{
		"Content-Type":      "text/event-stream; charset=utf-8",
		"Cache-Control":     "no-cache, no-transform",
		"X-Accel-Buffering": "no",
	} {
		if got := s.Resp.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	ev, err := s.NextNamed(ctx, "status")
	if err != nil || !strings.Contains(ev.Data, `"connecting"`) && !strings.Contains(ev.Data, `"online"`) {
		t.Fatalf("first status = %q, %v; want connecting or online", ev.Data, err)
	}
	if !strings.Contains(ev.Data, `"online"`) {
		waitOnline(ctx, t, s)
	}
	if s.Retry() != 3*time.Second {
		t.Errorf("retry hint = %v, want the default 3s", s.Retry())
	}

	userID := h.post(conv.ConversationID, conv.Token, "hello")
	var sawTyping bool
	var got []string
	for len(got) < 2 {
		ev, err := s.NextNamed(ctx, "activity")
		if err != nil {
			t.Fatal(err)
		}
		var a activity
		if err := json.Unmarshal([]byte(ev.Data), &a); err != nil {
			t.Fatalf("data is not one JSON line: %q", ev.Data)
		}
		if a.Type == "typing" {
			sawTyping = true
			if ev.HasID {
				t.Errorf("typing event carries an id: typing is not resumable")
			}
			continue
		}
		if !ev.HasID || ev.ID == "" {
			t.Errorf("activity %q has no id: cursor", a.Text)
		}
		got = append(got, a.Text)
		if a.Text == "hello" && a.ID != userID {
			t.Errorf("echoed user activity id %q, want %q", a.ID, userID)
		}
	}
	if got[0] != "hello" || got[1] != "echo: hello" {
		t.Errorf("activities = %q, want the user's message then the echo", got)
	}
	if !sawTyping {
		t.Errorf("typing activity not streamed")
	}
}

func TestStartKeeps201And200AndRewritesStreamURL(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	status, _, body := h.do(http.MethodPost, "/v3/directline/tokens/generate", h.fake.Secret(), nil)
	if status != http.StatusOK {
		t.Fatalf("generate: %d %s", status, body)
	}
	var gen conversation
	_ = json.Unmarshal(body, &gen)

	for i, want := range []int{http.StatusCreated, http.StatusOK} {
		status, _, body := h.do(http.MethodPost, "/v3/directline/conversations", gen.Token, nil)
		if status != want {
			t.Fatalf("start #%d: status %d, want %d", i+1, status, want)
		}
		var fields map[string]any
		if err := json.Unmarshal(body, &fields); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"conversationId", "token", "expires_in", "referenceGrammarId", "streamUrl"} {
			if _, ok := fields[k]; !ok {
				t.Errorf("start #%d: field %s missing from %s", i+1, k, body)
			}
		}
		// From the beginning, with the conversation's token.
		want := h.URL + "/v3/directline/conversations/" + gen.ConversationID + "/stream?lastEventId=~&t=" + url.QueryEscape(gen.Token)
		if su, _ := fields["streamUrl"].(string); su != want {
			t.Errorf("streamUrl = %q, want %q", su, want)
		}
	}

	// Reconnect is rewritten the same way, and the rewritten URL works.
	status, _, body = h.do(http.MethodGet, "/v3/directline/conversations/"+gen.ConversationID+"?watermark=0", gen.Token, nil)
	if status != http.StatusOK {
		t.Fatalf("reconnect: %d %s", status, body)
	}
	var rc conversation
	_ = json.Unmarshal(body, &rc)
	if !strings.HasPrefix(rc.StreamURL, h.URL+"/") {
		t.Fatalf("reconnect streamUrl %q not rewritten", rc.StreamURL)
	}
	ctx := testContext(t, 10*time.Second)
	s := h.open(ctx, rc.StreamURL, nil)
	h.post(gen.ConversationID, gen.Token, "after reconnect")
	if a, _ := nextActivity(ctx, t, s); a.Text != "after reconnect" {
		t.Errorf("got %q", a.Text)
	}
}

func TestSubscribersShareOneUpstreamSocket(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	var streams []*ssetest.Stream
	for range 3 {
		s := h.open(ctx, conv.StreamURL, nil)
		waitOnline(ctx, t, s)
		streams = append(streams, s)
	}
	h.post(conv.ConversationID, conv.Token, "to all")
	for i, s := range streams {
		if a, _ := nextActivity(ctx, t, s); a.Text != "to all" {
			t.Errorf("subscriber %d got %q", i, a.Text)
		}
	}
	if st := h.fake.Stats(); st.SocketsOpened != 1 || h.fake.SocketsOpen(conv.ConversationID) != 1 {
		t.Errorf("upstream sockets opened %d, open %d; want exactly one", st.SocketsOpened, h.fake.SocketsOpen(conv.ConversationID))
	}
}

// collectTexts reads n non-typing activities and fails on anything out of
// order: want[i] must be the i-th text.
func expectTexts(ctx context.Context, t *testing.T, s *ssetest.Stream, want []string) []ssetest.Event {
	t.Helper()
	evs := make([]ssetest.Event, 0, len(want))
	for i, w := range want {
		a, ev := nextActivity(ctx, t, s)
		if a.Text != w {
			t.Fatalf("activity %d = %q, want %q (missing or repeated)", i, a.Text, w)
		}
		evs = append(evs, ev)
	}
	return evs
}

func numbered(prefix string, from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%04d", prefix, i))
	}
	return out
}

func TestThousandMessagesAcrossFiveDropsExactlyOnce(t *testing.T) {
	t.Parallel()
	replayVariants(t, func(t *testing.T, fake []directlinetest.Option) {
		h := newHarness(t, harnessOptions{fake: fake})
		ctx := testContext(t, 60*time.Second)
		conv := h.start()
		s := h.open(ctx, conv.StreamURL, nil)
		msgs := numbered("m", 0, 1000)

		waitOnline(ctx, t, s)
		sent := make(chan error, 1)
		go func() {
			sent <- func() error {
				for i := 0; i < len(msgs); i += 10 {
					batch := msgs[i : i+10]
					var err error
					if i%30 == 0 {
						err = h.fake.PushSet(conv.ConversationID, batch...) // a multi-activity set
					} else {
						err = h.fake.Push(conv.ConversationID, batch...)
					}
					if err != nil {
						return err
					}
					if i%200 == 100 { // five drops, each with activities in flight
						drops := h.fake.Stats().SocketsOpened
						h.fake.DropSockets(conv.ConversationID)
						// Drop again only once the session is back.
						if err := h.fake.WaitFor(ctx, func(st directlinetest.Stats) bool { return st.SocketsOpened > drops }); err != nil {
							return err
						}
					}
				}
				return nil
			}()
		}()
		start := time.Now()
		expectTexts(ctx, t, s, msgs)
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		h.fake.Push(conv.ConversationID, "tail")
		expectTexts(ctx, t, s, []string{"tail"}) // and nothing repeated before it
		st := h.fake.Stats()
		t.Logf("1000 activities across 5 drops in %v; upstream sockets opened %d, reconnect calls %d",
			time.Since(start).Round(time.Millisecond), st.SocketsOpened, st.ReconnectCalls)
		if st.SocketsOpened < 6 {
			t.Errorf("sockets opened = %d, want the drops to have forced reconnects", st.SocketsOpened)
		}
	})
}

func TestResumeInsideMultiActivitySetExactlyOnce(t *testing.T) {
	t.Parallel()
	replayVariants(t, func(t *testing.T, fake []directlinetest.Option) {
		h := newHarness(t, harnessOptions{fake: fake})
		ctx := testContext(t, 10*time.Second)
		conv := h.start()
		s := h.open(ctx, conv.StreamURL, nil)
		set := []string{"a", "b", "c", "d", "e"}
		if err := h.fake.PushSet(conv.ConversationID, set...); err != nil {
			t.Fatal(err)
		}
		evs := expectTexts(ctx, t, s, set[:2])
		s.Close()

		resumed := h.open(ctx, h.streamURL(conv.ConversationID, conv.Token), http.Header{"Last-Event-ID": {evs[1].ID}})
		expectTexts(ctx, t, resumed, set[2:])
		h.fake.Push(conv.ConversationID, "f")
		expectTexts(ctx, t, resumed, []string{"f"})

		// The query parameter does the same (a new EventSource cannot send
		// the header).
		again := h.open(ctx, h.streamURL(conv.ConversationID, conv.Token)+"&lastEventId="+evs[0].ID, nil)
		expectTexts(ctx, t, again, []string{"b", "c", "d", "e", "f"})
	})
}

func TestResumeAgainstRestartedGatewayExactlyOnce(t *testing.T) {
	t.Parallel()
	replayVariants(t, func(t *testing.T, quirk []directlinetest.Option) {
		fake := directlinetest.NewServer(quirk...)
		t.Cleanup(fake.Close)
		first := newHarnessWithFake(t, fake, harnessOptions{})
		ctx := testContext(t, 20*time.Second)
		conv := first.start()
		s := first.open(ctx, conv.StreamURL, nil)
		fake.PushSet(conv.ConversationID, "a", "b", "c", "d")
		evs := expectTexts(ctx, t, s, []string{"a", "b"})
		first.stop()
		if _, err := s.Next(ctx); !errors.Is(err, ssetest.ErrEOF) {
			for err == nil {
				_, err = s.Next(ctx)
			}
		}
		// The opening hint is 3s too: only a second hint, written at
		// shutdown, is the shutdown's.
		if hints := s.Retries(); len(hints) != 2 || hints[1] < 3*time.Second {
			t.Errorf("retry hints %v: want the opening one, then the jittered shutdown hint (>= the 3s base)", hints)
		}
		fake.Push(conv.ConversationID, "while down")

		second := newHarnessWithFake(t, fake, harnessOptions{})
		resumed := second.open(ctx, second.streamURL(conv.ConversationID, conv.Token), http.Header{"Last-Event-ID": {evs[1].ID}})
		expectTexts(ctx, t, resumed, []string{"c", "d", "while down"})
		fake.Push(conv.ConversationID, "after")
		expectTexts(ctx, t, resumed, []string{"after"})
	})
}

func TestCursorOlderThanReplayBufferIsServedCompletely(t *testing.T) {
	t.Parallel()
	replayVariants(t, func(t *testing.T, quirk []directlinetest.Option) {
		h := newHarness(t, harnessOptions{fake: quirk, session: session.Config{ReplayBuffer: 8}})
		ctx := testContext(t, 20*time.Second)
		conv := h.start()
		keeper := h.open(ctx, conv.StreamURL, nil) // keeps the session warm
		reader := h.open(ctx, h.streamURL(conv.ConversationID, conv.Token), nil)
		waitOnline(ctx, t, reader)
		msgs := numbered("n", 0, 60)
		fake := h.fake
		fake.Push(conv.ConversationID, msgs[:3]...)
		evs := expectTexts(ctx, t, reader, msgs[:3])
		reader.Close()
		fake.Push(conv.ConversationID, msgs[3:]...)
		expectTexts(ctx, t, keeper, msgs) // the log has moved far past the cursor

		resumed := h.open(ctx, h.streamURL(conv.ConversationID, conv.Token), http.Header{"Last-Event-ID": {evs[2].ID}})
		expectTexts(ctx, t, resumed, msgs[3:])
		fake.Push(conv.ConversationID, "live")
		expectTexts(ctx, t, resumed, []string{"live"})
	})
}

func TestReadingSubscriberSurvivesBacklogLargerThanReplayBuffer(t *testing.T) {
	t.Parallel()
	replayVariants(t, func(t *testing.T, fake []directlinetest.Option) {
		h := newHarness(t, harnessOptions{fake: fake, session: session.Config{ReplayBuffer: 16}})
		ctx := testContext(t, 20*time.Second)
		conv := h.start()
		s := h.open(ctx, conv.StreamURL, nil)
		waitOnline(ctx, t, s)
		h.fake.Push(conv.ConversationID, "first")
		expectTexts(ctx, t, s, []string{"first"})
		msgs := numbered("b", 0, 500)
		// One set of 500 arrives in one frame, far more than the log keeps.
		if err := h.fake.PushSet(conv.ConversationID, msgs...); err != nil {
			t.Fatal(err)
		}
		expectTexts(ctx, t, s, msgs)
		h.fake.Push(conv.ConversationID, "last")
		expectTexts(ctx, t, s, []string{"last"})
	})
}

func TestDropBeforeAnyWatermarkLosesNothing(t *testing.T) {
	t.Parallel()
	replayVariants(t, func(t *testing.T, fake []directlinetest.Option) {
		h := newHarness(t, harnessOptions{fake: fake})
		ctx := testContext(t, 10*time.Second)
		conv := h.start()
		s := h.open(ctx, conv.StreamURL, nil)
		waitOnline(ctx, t, s)
		// Nothing has been said yet: the session has no watermark.
		h.fake.DropSockets(conv.ConversationID)
		h.fake.Push(conv.ConversationID, "said while down")
		expectTexts(ctx, t, s, []string{"said while down"})
		h.fake.Push(conv.ConversationID, "later")
		expectTexts(ctx, t, s, []string{"later"})
	})
}

func TestStatusEventsAcrossUpstreamDrop(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{session: session.Config{BackoffBase: 50 * time.Millisecond}})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	h.fake.FailNextDials(1, http.StatusServiceUnavailable)
	h.fake.DropSockets(conv.ConversationID)
	var states []string
	for len(states) == 0 || states[len(states)-1] != "online" {
		ev, err := s.NextNamed(ctx, "status")
		if err != nil {
			t.Fatal(err)
		}
		var st session.Status
		_ = json.Unmarshal([]byte(ev.Data), &st)
		states = append(states, string(st.State))
	}
	if states[0] != "reconnecting" {
		t.Errorf("states %v: want reconnecting first, then online", states)
	}
}

func TestTokenForAnotherConversationIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t, 10*time.Second)
	a := h.start()
	b := h.start()

	refused := func(name, url string, header http.Header, wantStatus int) {
		t.Helper()
		_, err := ssetest.Open(ctx, url, header)
		var se *ssetest.StatusError
		if !errors.As(err, &se) || se.Status != wantStatus {
			t.Errorf("%s: %v, want status %d", name, err, wantStatus)
			return
		}
		if !strings.Contains(se.Body, `"error"`) || !strings.Contains(se.Body, `"code"`) {
			t.Errorf("%s: body %q is not a Direct Line error", name, se.Body)
		}
	}
	// Before B has a session, and after.
	refused("A's token on B (no session)", h.streamURL(b.ConversationID, a.Token), nil, http.StatusForbidden)
	bs := h.open(ctx, b.StreamURL, nil)
	waitOnline(ctx, t, bs)
	refused("A's token on B (open session)", h.streamURL(b.ConversationID, a.Token), nil, http.StatusForbidden)
	refused("A's token as Bearer", h.URL+"/v3/directline/conversations/"+b.ConversationID+"/stream",
		http.Header{"Authorization": {"Bearer " + a.Token}}, http.StatusForbidden)
	refused("garbage token", h.streamURL(b.ConversationID, "garbage"), nil, http.StatusForbidden)
	refused("no credential", h.URL+"/v3/directline/conversations/"+b.ConversationID+"/stream", nil, http.StatusUnauthorized)
	refused("garbage cursor", h.streamURL(b.ConversationID, b.Token), http.Header{"Last-Event-ID": {"x~!!"}}, http.StatusBadRequest)
	refused("bad conversation id", h.streamURL("a%2F..", b.Token), nil, http.StatusBadRequest)

	// Nothing of B reached anyone else.
	h.post(b.ConversationID, b.Token, "for B only")
	if a, _ := nextActivity(ctx, t, bs); a.Text != "for B only" {
		t.Errorf("B got %q", a.Text)
	}
}

func TestExpiredTokenEndsStreamWithErrorEvent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t, 10*time.Second)
	_, _, body := h.do(http.MethodPost, "/v3/directline/tokens/generate", h.fake.Secret(), nil)
	var gen conversation
	_ = json.Unmarshal(body, &gen)
	status, _, body := h.do(http.MethodPost, "/v3/directline/conversations", gen.Token, nil)
	if status != http.StatusCreated {
		t.Fatalf("start: %d", status)
	}
	var conv conversation
	_ = json.Unmarshal(body, &conv)
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	h.fake.ExpireTokens()
	h.fake.DropSockets(conv.ConversationID)
	ev, err := s.NextNamed(ctx, "error")
	if err != nil {
		t.Fatalf("no error event: %v", err)
	}
	if !strings.Contains(ev.Data, "TokenExpired") {
		t.Errorf("error event %q, want code TokenExpired", ev.Data)
	}
	if _, err := s.Next(ctx); !errors.Is(err, ssetest.ErrEOF) {
		t.Errorf("stream did not end after the error event: %v", err)
	}
	_, err = ssetest.Open(ctx, conv.StreamURL, nil)
	var se *ssetest.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden {
		t.Errorf("next attempt: %v, want 403 so a browser stops", err)
	}
}

func TestIdleSessionIsClosedAfterGrace(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{
		session: session.Config{IdleGrace: 100 * time.Millisecond},
		// The gateway notices a client is gone when its FIN arrives,
		// not at a heartbeat: none comes within the test.
		gateway: gateway.Config{Heartbeat: time.Hour},
	})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	if h.mgr.Sessions() != 1 {
		t.Fatalf("sessions = %d", h.mgr.Sessions())
	}
	s.Close()
	waitFor(t, 5*time.Second, "idle session teardown", func() bool {
		return h.mgr.Sessions() == 0 && h.fake.SocketsOpen(conv.ConversationID) == 0
	})
}

func TestHeartbeatComments(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{gateway: gateway.Config{Heartbeat: 20 * time.Millisecond}})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	s := h.open(ctx, conv.StreamURL, nil)
	waitFor(t, 5*time.Second, "three heartbeats", func() bool { return s.Comments() >= 3 })
}

// TestStreamOutlivesTheHeadsWriteDeadline: the deadline the answer's head
// was written under is lifted for the stream, whose writes mostly need
// none: an activity long after it still arrives on the same stream
// (once, the write timeout after the head, every stream failed as slow).
func TestStreamOutlivesTheHeadsWriteDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{gateway: gateway.Config{Heartbeat: 20 * time.Millisecond, SSEWriteTimeout: 200 * time.Millisecond}})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	// Twenty silent heartbeats: well past the head's deadline.
	waitFor(t, 5*time.Second, "twenty heartbeats", func() bool { return s.Comments() >= 20 })
	h.post(conv.ConversationID, conv.Token, "late")
	for {
		ev, err := s.NextNamed(ctx, "activity")
		if err != nil {
			t.Fatalf("the stream ended after its head's deadline: %v", err)
		}
		if strings.Contains(ev.Data, `"echo: late"`) {
			return
		}
	}
}

// waitOnline reads status events until the upstream is online.
func waitOnline(ctx context.Context, t *testing.T, s *ssetest.Stream) {
	t.Helper()
	for {
		ev, err := s.NextNamed(ctx, "status")
		if err != nil {
			t.Fatalf("waiting for status online: %v", err)
		}
		if strings.Contains(ev.Data, `"online"`) {
			return
		}
	}
}

func TestCollisionWithNobodyListeningEndsSession(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{
		session: session.Config{IdleGrace: time.Hour},
		gateway: gateway.Config{Heartbeat: 20 * time.Millisecond},
	})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	s.Close()
	waitFor(t, 5*time.Second, "the subscriber to be gone", func() bool {
		ss := h.mgr.Session(conv.ConversationID)
		return ss != nil && ss.Subscribers() == 0
	})
	opened := h.fake.Stats().SocketsOpened
	h.fake.CloseSocket(conv.ConversationID, 1008, "collision")
	waitFor(t, 5*time.Second, "the session to end (idle grace is an hour)", func() bool { return h.mgr.Sessions() == 0 })
	if got := h.fake.Stats().SocketsOpened; got != opened {
		t.Errorf("the socket was reopened after a collision with nobody listening")
	}
}

// TestResumeTimings measures, for the record, how long the two kinds of
// recovery take on loopback: a forced upstream drop (until the next
// activity arrives) and a client reconnect with Last-Event-ID. It asserts
// correctness only; the numbers are logged (go test -v -run Timings).
func TestResumeTimings(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{session: session.Config{BackoffBase: session.DefaultBackoffBase}})
	ctx := testContext(t, 30*time.Second)
	conv := h.start()
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	var drops []time.Duration
	for i := range 5 {
		opened := h.fake.Stats().SocketsOpened
		start := time.Now()
		h.fake.DropSockets(conv.ConversationID)
		h.fake.Push(conv.ConversationID, fmt.Sprintf("after drop %d", i))
		expectTexts(ctx, t, s, []string{fmt.Sprintf("after drop %d", i)})
		drops = append(drops, time.Since(start))
		if err := h.fake.WaitFor(ctx, func(st directlinetest.Stats) bool { return st.SocketsOpened > opened }); err != nil {
			t.Fatal(err)
		}
	}
	h.fake.Push(conv.ConversationID, "x")
	_, ev := nextActivity(ctx, t, s)
	s.Close()
	h.fake.Push(conv.ConversationID, "missed")
	start := time.Now()
	r := h.open(ctx, h.streamURL(conv.ConversationID, conv.Token), http.Header{"Last-Event-ID": {ev.ID}})
	expectTexts(ctx, t, r, []string{"missed"})
	t.Logf("upstream drop → next activity (backoff base %v, full jitter): %v", session.DefaultBackoffBase, drops)
	t.Logf("client reconnect with Last-Event-ID → missed activity: %v", time.Since(start))
}

// A session outlives the token of whoever opened it: it calls Direct Line
// with the latest credential a subscriber proved, and an expired credential
// no longer opens a stream.
func TestSessionOutlivesCreatorsExpiredToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{session: session.Config{VerifyTTL: time.Nanosecond}})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	a := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, a)

	h.fake.ExpireTokens() // the creator's token is dead from now on
	status, _, body := h.do(http.MethodGet, "/v3/directline/conversations/"+conv.ConversationID, h.fake.Secret(), nil)
	var fresh conversation
	if err := json.Unmarshal(body, &fresh); status != http.StatusOK || err != nil || fresh.Token == "" {
		t.Fatalf("reconnect for a fresh token: %d %s", status, body)
	}
	b := h.open(ctx, h.streamURL(conv.ConversationID, fresh.Token), nil)
	waitOnline(ctx, t, b)

	_, err := ssetest.Open(ctx, h.streamURL(conv.ConversationID, conv.Token), nil)
	var se *ssetest.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden {
		t.Errorf("expired token opened a stream: %v", err)
	}

	h.fake.DropSockets(conv.ConversationID)
	h.fake.Push(conv.ConversationID, "still here")
	expectTexts(ctx, t, a, []string{"still here"})
	expectTexts(ctx, t, b, []string{"still here"})
}

// A stranger with a bad credential opens no session, and decides nothing
// for a legitimate subscriber that arrives while its credential is being
// checked with Direct Line.
func TestBadCreatorDoesNotRefuseWaiters(t *testing.T) {
	t.Parallel()
	rt := newRecordingTransport(t)
	h := newHarness(t, harnessOptions{upstream: upstream.Config{Transport: rt}})
	ctx := testContext(t, 10*time.Second)
	id, token := h.fake.NewConversation() // no start through dlsse: nothing vouches for anyone
	h.fake.SetLatency(300 * time.Millisecond)
	bad := make(chan error, 1)
	go func() {
		_, err := ssetest.Open(ctx, h.streamURL(id, "bogus"), nil)
		bad <- err
	}()
	waitFor(t, 5*time.Second, "the stranger's check", func() bool { return rt.count() > 0 })
	if h.mgr.Session(id) != nil {
		t.Errorf("a session was opened for an unverified credential")
	}
	s := h.open(ctx, h.streamURL(id, token), nil)
	h.fake.SetLatency(0)
	waitOnline(ctx, t, s)
	var se *ssetest.StatusError
	if err := <-bad; !errors.As(err, &se) || se.Status != http.StatusForbidden {
		t.Errorf("bogus credential: %v, want 403", err)
	}
}

func TestEndOfConversationEndsStreamsAndTellsLateComers(t *testing.T) {
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
	h.post(conv.ConversationID, conv.Token, "bye")
	for {
		a, _ := nextActivity(ctx, t, s)
		if a.Type == "endOfConversation" {
			break
		}
	}
	h.fake.DropSockets(conv.ConversationID) // no reconnect after the end
	ev, err := s.NextNamed(ctx, "status")
	for err == nil && !strings.Contains(ev.Data, `"ended"`) {
		ev, err = s.NextNamed(ctx, "status")
	}
	if err != nil {
		t.Fatalf("no ended status: %v", err)
	}
	if _, err := s.Next(ctx); !errors.Is(err, ssetest.ErrEOF) {
		t.Errorf("stream did not end: %v", err)
	}
	_, err = ssetest.Open(ctx, conv.StreamURL, nil)
	var se *ssetest.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusNoContent {
		t.Errorf("after the end: %v, want 204 so EventSource stops", err)
	}
}

// A client that loses its stream before any activity arrived resumes from
// where it joined: status events carry its cursor as id, so EventSource
// sends it back.
func TestResumeBeforeAnyActivityLosesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t, 10*time.Second)
	for _, c := range []struct {
		name    string
		history bool
	}{{"new conversation", false}, {"conversation with history", true}} {
		conv := h.start()
		if c.history {
			h.fake.Push(conv.ConversationID, "old")
		}
		s := h.open(ctx, h.streamURL(conv.ConversationID, conv.Token), nil)
		ev, err := s.NextNamed(ctx, "status")
		if err != nil || !ev.HasID {
			t.Fatalf("%s: first status %+v %v: want an id", c.name, ev, err)
		}
		s.Close()
		h.fake.Push(conv.ConversationID, "while away")
		r := h.open(ctx, h.streamURL(conv.ConversationID, conv.Token), http.Header{"Last-Event-ID": {ev.ID}})
		want := []string{"while away"}
		if c.history && ev.ID == "~" {
			want = []string{"old", "while away"}
		}
		expectTexts(ctx, t, r, want)
	}
}

// replayVariants runs a resume test twice: against a Direct Line that
// replays exactly what is asked, and against one that replays more after a
// reconnect (a known quirk of the real service), which deduplication by
// activity id must absorb.
func replayVariants(t *testing.T, test func(t *testing.T, fake []directlinetest.Option)) {
	for _, v := range []struct {
		name  string
		extra int
	}{{"exact", 0}, {"replays-more", 5}} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			test(t, []directlinetest.Option{directlinetest.WithReplayExtra(v.extra)})
		})
	}
}
