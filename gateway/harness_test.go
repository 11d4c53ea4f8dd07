package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse/ssetest"
	"github.com/dlsse/dlsse/upstream"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// harness runs the whole chain on loopback: Direct Line fake ← upstream
// client ← session manager ← gateway on a real listener.
type harness struct {
	t    testing.TB
	fake *directlinetest.Server
	up   *upstream.Client
	mgr  *session.Manager
	gw   *gateway.Gateway
	URL  string
	logs *syncBuffer

	stopOnce sync.Once
	stopFn   func()
}

type harnessOptions struct {
	session  session.Config
	gateway  gateway.Config
	upstream upstream.Config
	fake     []directlinetest.Option
}

func newHarness(t testing.TB, opts harnessOptions) *harness {
	t.Helper()
	fake := directlinetest.NewServer(opts.fake...)
	t.Cleanup(fake.Close)
	return newHarnessWithFake(t, fake, opts)
}

// newHarnessWithFake runs a gateway in front of an existing fake, as a
// restarted gateway would be.
func newHarnessWithFake(t testing.TB, fake *directlinetest.Server, opts harnessOptions) *harness {
	t.Helper()
	h := &harness{t: t, logs: &syncBuffer{}, fake: fake}
	logger := zerolog.New(h.logs).Level(zerolog.DebugLevel)

	opts.upstream.BaseURL = h.fake.URL
	up, err := upstream.New(opts.upstream)
	if err != nil {
		t.Fatal(err)
	}
	h.up = up
	opts.session.Logger = logger
	if opts.session.BackoffBase == 0 {
		opts.session.BackoffBase = 20 * time.Millisecond
	}
	h.mgr = session.NewManager(up, opts.session)
	opts.gateway.Logger = logger
	// Every test client comes from 127.0.0.1: per-address limits are
	// tested on their own, and out of the way everywhere else.
	if opts.gateway.RequestsPerIP == 0 {
		opts.gateway.RequestsPerIP = 1_000_000
	}
	if opts.gateway.MaxStreamsPerIP == 0 {
		opts.gateway.MaxStreamsPerIP = 1_000_000
	}
	h.gw, err = gateway.New(opts.gateway, up, h.mgr)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.URL = "http://" + ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- h.gw.Serve(ln) }()
	h.stopFn = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.gw.Shutdown(ctx); err != nil {
			t.Errorf("gateway shutdown: %v", err)
			dumpGoroutines(t)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := h.mgr.Close(ctx); err != nil {
			t.Errorf("sessions close: %v", err)
			dumpGoroutines(t)
		}
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	}
	t.Cleanup(func() { // registered first, runs last: after any stop
		if t.Failed() {
			t.Logf("gateway %s logs:\n%s", h.URL, h.logs.String())
		}
	})
	t.Cleanup(h.stop)
	return h
}

// stop shuts the gateway down (streams end, sessions close). Idempotent.
func (h *harness) stop() { h.stopOnce.Do(h.stopFn) }

// ctx is a test-bounded context.
func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// do sends a request to the gateway and returns status and body.
func (h *harness) do(method, path, credential string, body any) (int, http.Header, []byte) {
	h.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.URL+path, r)
	if err != nil {
		h.t.Fatal(err)
	}
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

type conversation struct {
	ConversationID string `json:"conversationId"`
	Token          string `json:"token"`
	StreamURL      string `json:"streamUrl"`
	ExpiresIn      int    `json:"expires_in"`
}

// start starts a conversation through the gateway with the fake's secret.
func (h *harness) start() conversation {
	h.t.Helper()
	status, _, body := h.do(http.MethodPost, "/v3/directline/conversations", h.fake.Secret(), nil)
	if status != http.StatusCreated {
		h.t.Fatalf("start: status %d: %s", status, body)
	}
	var c conversation
	if err := json.Unmarshal(body, &c); err != nil {
		h.t.Fatal(err)
	}
	return c
}

// post sends a user message and returns its id.
func (h *harness) post(conv, credential, text string) string {
	h.t.Helper()
	status, _, body := h.do(http.MethodPost, "/v3/directline/conversations/"+conv+"/activities", credential,
		map[string]any{"type": "message", "from": map[string]any{"id": "user1"}, "text": text})
	if status != http.StatusOK {
		h.t.Fatalf("post: status %d: %s", status, body)
	}
	var res struct{ ID string }
	_ = json.Unmarshal(body, &res)
	return res.ID
}

// open opens a stream and fails the test if it does not open.
func (h *harness) open(ctx context.Context, url string, header http.Header) *ssetest.Stream {
	h.t.Helper()
	s, err := ssetest.Open(ctx, url, header)
	if err != nil {
		h.t.Fatalf("open stream: %v", err)
	}
	h.t.Cleanup(s.Close)
	return s
}

// streamURL is the gateway's stream URL for a conversation.
func (h *harness) streamURL(conv, credential string) string {
	return h.URL + "/v3/directline/conversations/" + conv + "/stream?t=" + credential
}

// activity is what tests read from an activity event.
type activity struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Text string `json:"text"`
}

// nextActivity returns the next non-typing activity of a stream.
func nextActivity(ctx context.Context, t *testing.T, s *ssetest.Stream) (activity, ssetest.Event) {
	t.Helper()
	for {
		ev, err := s.NextNamed(ctx, "activity")
		if err != nil {
			t.Fatalf("waiting for an activity: %v", err)
		}
		var a activity
		if err := json.Unmarshal([]byte(ev.Data), &a); err != nil {
			t.Fatalf("activity data is not JSON: %q", ev.Data)
		}
		if a.Type != "typing" {
			return a, ev
		}
	}
}

// waitFor polls cond until it holds or the deadline passes. For state that
// has no event to wait on (counts inside the gateway).
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Contains(sub string) bool { return strings.Contains(s.String(), sub) }

// dumpGoroutines logs the stacks of the goroutines that serve or stream,
// to show what a shutdown that timed out was waiting for.
func dumpGoroutines(t testing.TB) {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "dlsse/") || strings.Contains(g, "fasthttp") {
			t.Logf("%s\n", g)
		}
	}
}

// openLive starts n conversations with one stream each, waits until every
// stream is online, and proves each delivers (one "pre-i" message each).
func (h *harness) openLive(ctx context.Context, t *testing.T, n int) ([]conversation, []*ssetest.Stream) {
	t.Helper()
	convs := make([]conversation, n)
	streams := make([]*ssetest.Stream, n)
	for i := range convs {
		convs[i] = h.start()
		streams[i] = h.open(ctx, convs[i].StreamURL, nil)
	}
	for i, s := range streams {
		waitOnline(ctx, t, s)
		if err := h.fake.Push(convs[i].ConversationID, fmt.Sprintf("pre-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range streams {
		expectTexts(ctx, t, s, []string{fmt.Sprintf("pre-%d", i)})
	}
	return convs, streams
}
