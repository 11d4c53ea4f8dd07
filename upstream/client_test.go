package upstream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/goleak"

	"github.com/dlsse/dlsse/upstream"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// TestMain fails the package if any goroutine outlives the tests: every
// HTTP connection, socket and keepalive timer the client starts must be
// stopped by its owner. Nothing is ignored.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every wait; nothing should take more than a fraction.
const testTimeout = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newFake starts a Direct Line fake without keepalives (so streams carry
// exactly what a test sends) that is closed when the test ends.
func newFake(t *testing.T, opts ...directlinetest.Option) *directlinetest.Server {
	t.Helper()
	s := directlinetest.NewServer(append([]directlinetest.Option{directlinetest.WithKeepalive(0)}, opts...)...)
	t.Cleanup(s.Close)
	return s
}

// countingTransport counts the requests that actually left the client,
// and can run a hook once the next request's bytes are on the wire.
type countingTransport struct {
	base   *http.Transport
	n      atomic.Int64
	mu     sync.Mutex
	onSent func()
}

func newCountingTransport() *countingTransport {
	c := &countingTransport{base: http.DefaultTransport.(*http.Transport).Clone()}
	var d net.Dialer
	c.base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &notifyConn{Conn: conn, t: c}, nil
	}
	return c
}

func newTransport(t *testing.T) *countingTransport {
	c := newCountingTransport()
	t.Cleanup(c.base.CloseIdleConnections)
	return c
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

// afterNextWrite makes f run once, after the next write to any connection.
func (c *countingTransport) afterNextWrite(f func()) {
	c.mu.Lock()
	c.onSent = f
	c.mu.Unlock()
}

type notifyConn struct {
	net.Conn
	t *countingTransport
}

func (n *notifyConn) Write(b []byte) (int, error) {
	k, err := n.Conn.Write(b)
	n.t.mu.Lock()
	f := n.t.onSent
	n.t.onSent = nil
	n.t.mu.Unlock()
	if f != nil {
		f()
	}
	return k, err
}

// newClient returns a client for base with a counting transport.
func newClient(t *testing.T, base string, cfg upstream.Config) (*upstream.Client, *countingTransport) {
	t.Helper()
	tr := newTransport(t)
	cfg.BaseURL = base
	cfg.Transport = tr
	c, err := upstream.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, tr
}

// trip3 is the breaker the tests use: three consecutive failures open it.
func trip3(timeout time.Duration) gobreaker.Settings {
	return gobreaker.Settings{
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
		Timeout:     timeout,
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// texts returns the text (or, without one, the type) of each activity.
func texts(t *testing.T, set upstream.ActivitySet) []string {
	t.Helper()
	out := make([]string, 0, len(set.Activities))
	for _, raw := range set.Activities {
		var a struct{ Type, Text string }
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatalf("activity %s: %v", raw, err)
		}
		if a.Text != "" {
			out = append(out, a.Text)
		} else {
			out = append(out, a.Type)
		}
	}
	return out
}

func TestNewValidatesBaseURL(t *testing.T) {
	tests := []struct {
		base    string
		wantErr bool
	}{
		{"", false}, // DefaultBaseURL
		{"http://127.0.0.1:1", false},
		{"https://directline.example.com/", false},
		{"https://example.com/prefix", false},
		{"ftp://example.com", true},
		{"ws://example.com", true},
		{"http://", true},
		{"localhost:8080", true},
		{"://nope", true},
		{"just text", true},
	}
	for _, tt := range tests {
		_, err := upstream.New(upstream.Config{BaseURL: tt.base})
		if (err != nil) != tt.wantErr {
			t.Errorf("New(%q): err = %v, want error %v", tt.base, err, tt.wantErr)
		}
	}
}

func TestReconnect(t *testing.T) {
	fake := newFake(t)
	c, _ := newClient(t, fake.URL, upstream.Config{})
	conv, tok := fake.NewConversation()

	t.Run("token", func(t *testing.T) {
		got, err := c.Reconnect(testCtx(t), tok, conv, "")
		if err != nil {
			t.Fatal(err)
		}
		if got.ConversationID != conv || got.Token != tok {
			t.Errorf("got %+v, want conversation %s with the same token", got, conv)
		}
		if !strings.HasPrefix(got.StreamURL, "ws://") || !strings.Contains(got.StreamURL, "/conversations/"+conv+"/stream?t=") {
			t.Errorf("streamUrl %q", got.StreamURL)
		}
	})
	t.Run("secret", func(t *testing.T) {
		got, err := c.Reconnect(testCtx(t), fake.Secret(), conv, "2")
		if err != nil {
			t.Fatal(err)
		}
		if got.ConversationID != conv || got.Token == "" || got.Token == fake.Secret() || got.StreamURL == "" {
			t.Errorf("got %+v", got)
		}
	})
	if n := fake.Stats().ReconnectCalls; n != 2 {
		t.Errorf("ReconnectCalls = %d, want 2", n)
	}
}

func TestActivities(t *testing.T) {
	fake := newFake(t)
	c, _ := newClient(t, fake.URL, upstream.Config{})
	conv, tok := fake.NewConversation()

	// Empty conversation: an empty set at watermark 0.
	set, err := c.Activities(testCtx(t), tok, conv, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Activities) != 0 || set.Watermark != "0" {
		t.Fatalf("empty conversation: %d activities, watermark %q", len(set.Activities), set.Watermark)
	}

	if err := fake.Push(conv, "a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	if err := fake.PushTyping(conv); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		watermark string
		want      []string
	}{
		{"", []string{"a", "b", "c"}}, // typing is never polled
		{"0", []string{"a", "b", "c"}},
		{"2", []string{"c"}},
		{"3", nil},
	}
	for _, tt := range tests {
		set, err := c.Activities(testCtx(t), tok, conv, tt.watermark)
		if err != nil {
			t.Fatalf("watermark %q: %v", tt.watermark, err)
		}
		if got := texts(t, set); strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("watermark %q: activities %v, want %v", tt.watermark, got, tt.want)
		}
		if set.Watermark != "3" {
			t.Errorf("watermark %q: set watermark %q, want 3", tt.watermark, set.Watermark)
		}
	}
}

func TestForwardPassesRequestAndAnswerThrough(t *testing.T) {
	fake := newFake(t)
	c, _ := newClient(t, fake.URL, upstream.Config{})
	conv, tok := fake.NewConversation()
	auth := http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}}
	activity := `{"type":"message","from":{"id":"u1"},"text":"%s"}`

	bodies := []struct {
		name string
		body io.Reader
	}{
		{"sized", strings.NewReader(strings.Replace(activity, "%s", "sized", 1))},
		// No Len: sent chunked.
		{"unsized", io.MultiReader(strings.NewReader(strings.Replace(activity, "%s", "unsized", 1)))},
	}
	for _, b := range bodies {
		resp, err := c.Forward(testCtx(t), http.MethodPost, upstream.ConversationPath(conv)+"/activities", "", auth, b.body)
		if err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(raw, []byte(`"id":"`+conv+`|`)) {
			t.Fatalf("%s: status %d body %s", b.name, resp.StatusCode, raw)
		}
	}
	if n := fake.Stats().Posts; n != 2 {
		t.Fatalf("Posts = %d, want 2", n)
	}

	// The query string goes through. The history is each post and its
	// echo (the echo bot's typing is not stored): after watermark 2 come
	// the second post and its echo.
	resp, err := c.Forward(testCtx(t), http.MethodGet, upstream.ConversationPath(conv)+"/activities", "watermark=2", auth, nil)
	if err != nil {
		t.Fatal(err)
	}
	var set upstream.ActivitySet
	err = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(texts(t, set), ","); got != "unsized,echo: unsized" || set.Watermark != "4" {
		t.Errorf("after watermark 2: %s at %q", got, set.Watermark)
	}

	// Error answers are answers, not errors: the caller gets them as is.
	fake.FailNext(1, http.StatusServiceUnavailable, "", "3")
	resp, err = c.Forward(testCtx(t), http.MethodGet, upstream.ConversationPath(conv), "", auth, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "3" || !bytes.Contains(raw, []byte("ServiceError")) {
		t.Errorf("injected failure: status %d, Retry-After %q, body %s", resp.StatusCode, resp.Header.Get("Retry-After"), raw)
	}
}

// TestForwardNeverFollowsRedirects: following one would hand the bearer
// credential to whatever host the redirect names.
func TestForwardNeverFollowsRedirects(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)

	c, _ := newClient(t, redirector.URL, upstream.Config{})
	resp, err := c.Forward(testCtx(t), http.MethodGet, "/conversations/x", "", http.Header{"Authorization": {"Bearer secret"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("status %d, want the 307 itself", resp.StatusCode)
	}
	if _, err := c.Reconnect(testCtx(t), "secret", "x", ""); err == nil {
		t.Error("Reconnect answered by a redirect: no error")
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}

// TestForwardKeepsEscapedPath: ConversationPath escapes an id into one path
// segment, and Forward's contract says path is already escaped, so the
// escape must reach Direct Line once, not twice.
func TestForwardKeepsEscapedPath(t *testing.T) {
	got := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.EscapedPath()
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	c, _ := newClient(t, srv.URL, upstream.Config{})
	resp, err := c.Forward(testCtx(t), http.MethodGet, upstream.ConversationPath("a|b c")+"/activities", "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if p, want := <-got, "/v3/directline/conversations/a%7Cb%20c/activities"; p != want {
		t.Errorf("Direct Line got path %s, want %s", p, want)
	}
}

// TestForwardLeavesNothingBehind runs many forwards, some cancelled, then
// checks that once the service is gone no goroutine of the client is left.
func TestForwardLeavesNothingBehind(t *testing.T) {
	fake := directlinetest.NewServer(directlinetest.WithKeepalive(0))
	tr := newCountingTransport()
	c, err := upstream.New(upstream.Config{BaseURL: fake.URL, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	conv, tok := fake.NewConversation()
	auth := http.Header{"Authorization": {"Bearer " + tok}}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if i%4 == 0 {
				cancel()
			}
			resp, err := c.Forward(ctx, http.MethodGet, upstream.ConversationPath(conv)+"/activities", "", auth, nil)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
	fake.Close()
	tr.base.CloseIdleConnections()
	goleak.VerifyNone(t)
}

// --- circuit breaker ---

func TestBreakerTripsOnServerFailures(t *testing.T) {
	tests := []struct {
		name string
		// fail makes the next three calls fail the way the test wants and
		// returns the call to make.
		fail        func(fake *directlinetest.Server) func(c *upstream.Client, conv, tok, streamURL string) error
		wantAPI     int  // status of the *APIError each failing call returns
		wantTimeout bool // each failing call times out
	}{
		{"500 on reconnect", func(fake *directlinetest.Server) func(*upstream.Client, string, string, string) error {
			fake.FailNext(3, http.StatusInternalServerError, "", "")
			return reconnectCall
		}, http.StatusInternalServerError, false},
		{"503 on polling", func(fake *directlinetest.Server) func(*upstream.Client, string, string, string) error {
			fake.FailNext(3, http.StatusServiceUnavailable, "", "1")
			return activitiesCall
		}, http.StatusServiceUnavailable, false},
		{"502 on forward", func(fake *directlinetest.Server) func(*upstream.Client, string, string, string) error {
			fake.FailNext(3, http.StatusBadGateway, "", "")
			return forwardCall
		}, 0, false}, // Forward hands the answer back, and still counts it
		{"503 on dial", func(fake *directlinetest.Server) func(*upstream.Client, string, string, string) error {
			fake.FailNextDials(3, http.StatusServiceUnavailable)
			return dialCall
		}, http.StatusServiceUnavailable, false},
		{"timeouts", func(fake *directlinetest.Server) func(*upstream.Client, string, string, string) error {
			fake.SetLatency(time.Minute)
			return reconnectCall
		}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			cfg := upstream.Config{Breaker: trip3(time.Minute)}
			if tt.wantTimeout {
				cfg.RequestTimeout = 50 * time.Millisecond
			}
			c, tr := newClient(t, fake.URL, cfg)
			conv, tok, first := setup(t, fake)
			call := tt.fail(fake)
			for i := range 3 {
				if c.BreakerState() != gobreaker.StateClosed {
					t.Fatalf("breaker %v after %d failures", c.BreakerState(), i)
				}
				err := call(c, conv, tok, first.StreamURL)
				var apiErr *upstream.APIError
				switch {
				case tt.wantAPI != 0:
					if !errors.As(err, &apiErr) || apiErr.Status != tt.wantAPI {
						t.Fatalf("failure %d: %v, want *APIError %d", i, err, tt.wantAPI)
					}
				case tt.wantTimeout:
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Fatalf("failure %d: %v, want a timeout", i, err)
					}
				case err != nil:
					t.Fatalf("failure %d: %v", i, err)
				}
			}
			if s := c.BreakerState(); s != gobreaker.StateOpen {
				t.Fatalf("breaker %v after 3 failures, want open", s)
			}

			// Open: every kind of call fails fast without reaching Direct Line.
			before, sent := fake.Stats(), tr.n.Load()
			for name, call := range map[string]func(*upstream.Client, string, string, string) error{
				"reconnect": reconnectCall, "activities": activitiesCall, "forward": forwardCall, "dial": dialCall,
			} {
				err := call(c, conv, tok, first.StreamURL)
				if !errors.Is(err, upstream.ErrUnavailable) {
					t.Errorf("%s with breaker open: %v, want ErrUnavailable", name, err)
				}
				var apiErr *upstream.APIError
				if errors.As(err, &apiErr) {
					t.Errorf("%s with breaker open: an *APIError %v", name, apiErr)
				}
			}
			after := fake.Stats()
			if n := tr.n.Load() - sent; n != 0 {
				t.Errorf("%d requests left the client while the breaker was open", n)
			}
			if after.ReconnectCalls != before.ReconnectCalls || after.ActivityGets != before.ActivityGets || after.SocketsOpened != before.SocketsOpened {
				t.Errorf("Direct Line was reached while the breaker was open: %+v then %+v", before, after)
			}
		})
	}
}

// setup creates a conversation and gets a stream URL for it with a client
// of its own, so that the breaker under test has seen nothing yet.
func setup(t *testing.T, fake *directlinetest.Server) (conv, tok string, info upstream.Conversation) {
	t.Helper()
	c, _ := newClient(t, fake.URL, upstream.Config{})
	conv, tok = fake.NewConversation()
	info, err := c.Reconnect(testCtx(t), tok, conv, "")
	if err != nil {
		t.Fatal(err)
	}
	return conv, tok, info
}

func reconnectCall(c *upstream.Client, conv, tok, _ string) error {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := c.Reconnect(ctx, tok, conv, "")
	return err
}

func activitiesCall(c *upstream.Client, conv, tok, _ string) error {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := c.Activities(ctx, tok, conv, "")
	return err
}

func forwardCall(c *upstream.Client, conv, tok, _ string) error {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	resp, err := c.Forward(ctx, http.MethodGet, upstream.ConversationPath(conv)+"/activities", "",
		http.Header{"Authorization": {"Bearer " + tok}}, nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

func dialCall(c *upstream.Client, _, _, streamURL string) error {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s, err := c.Dial(ctx, streamURL)
	if err != nil {
		return err
	}
	return s.Close()
}

func TestBreakerIgnoresClientErrors(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTooManyRequests} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			fake := newFake(t)
			c, _ := newClient(t, fake.URL, upstream.Config{Breaker: trip3(time.Minute)})
			conv, tok := fake.NewConversation()
			first, err := c.Reconnect(testCtx(t), tok, conv, "")
			if err != nil {
				t.Fatal(err)
			}
			fake.FailNext(5, status, "Nope", "")
			for i := range 5 {
				_, err := c.Reconnect(testCtx(t), tok, conv, "")
				var apiErr *upstream.APIError
				if !errors.As(err, &apiErr) || apiErr.Status != status {
					t.Fatalf("call %d: %v, want *APIError %d", i, err, status)
				}
			}
			fake.FailNextDials(5, status)
			for i := range 5 {
				err := dialCall(c, conv, tok, first.StreamURL)
				var apiErr *upstream.APIError
				if !errors.As(err, &apiErr) || apiErr.Status != status {
					t.Fatalf("dial %d: %v, want *APIError %d", i, err, status)
				}
			}
			if s := c.BreakerState(); s != gobreaker.StateClosed {
				t.Fatalf("breaker %v after ten %d answers, want closed", s, status)
			}
			if _, err := c.Reconnect(testCtx(t), tok, conv, ""); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestBreakerExcludesCancellation: two failures, then cancelled calls of
// every kind, then one more failure. Had a cancellation counted as a
// failure the breaker would open early; had it counted as a success the
// consecutive failures would restart and the last one would not trip it.
//
// The failures are timeouts: Direct Line holds every REST call for a
// minute. (An injected FailNext could be consumed by the handler of the
// request cancelled in flight, if that handler only ran afterwards.)
func TestBreakerExcludesCancellation(t *testing.T) {
	fake := newFake(t)
	c, tr := newClient(t, fake.URL, upstream.Config{Breaker: trip3(time.Minute), RequestTimeout: 100 * time.Millisecond})
	conv, tok, first := setup(t, fake)
	fake.SetLatency(time.Minute)
	timeout := func() {
		t.Helper()
		if err := reconnectCall(c, conv, tok, ""); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("want a timeout, got %v", err)
		}
	}
	timeout()
	timeout()

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		call func() error
	}{
		{"reconnect cancelled before", func() error { _, err := c.Reconnect(cancelled, tok, conv, ""); return err }},
		{"polling cancelled before", func() error { _, err := c.Activities(cancelled, tok, conv, ""); return err }},
		{"forward cancelled before", func() error {
			_, err := c.Forward(cancelled, http.MethodGet, upstream.ConversationPath(conv), "", nil, nil)
			return err
		}},
		{"dial cancelled before", func() error { _, err := c.Dial(cancelled, first.StreamURL); return err }},
		{"reconnect cancelled in flight", func() error {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tr.afterNextWrite(cancel)
			_, err := c.Reconnect(ctx, tok, conv, "")
			return err
		}},
		{"forward cancelled in flight", func() error {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tr.afterNextWrite(cancel)
			_, err := c.Forward(ctx, http.MethodGet, upstream.ConversationPath(conv), "", nil, nil)
			return err
		}},
	}
	for _, tc := range cases {
		err := tc.call()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: %v, want context.Canceled", tc.name, err)
		}
		if s := c.BreakerState(); s != gobreaker.StateClosed {
			t.Fatalf("%s: breaker %v, want closed", tc.name, s)
		}
	}

	timeout()
	if s := c.BreakerState(); s != gobreaker.StateOpen {
		t.Fatalf("third consecutive failure: breaker %v, want open", s)
	}
}

// TestBreakerRecovers: after Timeout the breaker lets one probe through;
// the probe's outcome closes it again or reopens it.
func TestBreakerRecovers(t *testing.T) {
	tests := []struct {
		name   string
		probe  func(fake *directlinetest.Server)
		want   gobreaker.State
		wantOK bool
	}{
		{"probe succeeds", func(*directlinetest.Server) {}, gobreaker.StateClosed, true},
		{"probe answered 4xx", func(f *directlinetest.Server) { f.FailNext(1, http.StatusNotFound, "", "") }, gobreaker.StateClosed, false},
		{"probe answered 5xx", func(f *directlinetest.Server) { f.FailNext(1, http.StatusBadGateway, "", "") }, gobreaker.StateOpen, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			const timeout = 50 * time.Millisecond
			c, _ := newClient(t, fake.URL, upstream.Config{Breaker: trip3(timeout)})
			conv, tok := fake.NewConversation()
			fake.FailNext(3, http.StatusServiceUnavailable, "", "")
			tripped := time.Now()
			for range 3 {
				_ = reconnectCall(c, conv, tok, "")
			}
			if s := c.BreakerState(); s != gobreaker.StateOpen {
				t.Fatalf("breaker %v, want open", s)
			}
			eventually(t, "half-open", func() bool { return c.BreakerState() == gobreaker.StateHalfOpen })
			if d := time.Since(tripped); d < timeout {
				t.Fatalf("half-open after %v, before Timeout %v", d, timeout)
			}
			tt.probe(fake)
			if err := reconnectCall(c, conv, tok, ""); (err == nil) != tt.wantOK {
				t.Fatalf("probe: %v", err)
			}
			if s := c.BreakerState(); s != tt.want {
				t.Fatalf("after the probe: breaker %v, want %v", s, tt.want)
			}
			if tt.want == gobreaker.StateClosed {
				if err := reconnectCall(c, conv, tok, ""); err != nil {
					t.Fatalf("closed again, but: %v", err)
				}
			}
		})
	}
}
