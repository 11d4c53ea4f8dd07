package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2/utils"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse/ssetest"
	"github.com/dlsse/dlsse/upstream"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// Security, end to end over real loopback sockets: who may read a stream,
// token-server mode, CORS, the limits, hostile input from clients, and
// hostile frames from Direct Line. Conditions are awaited through events,
// the fake's WaitFor or waitFor polling; nothing sleeps to let time pass.

// ---------------------------------------------------------------------------
// Helpers (prefixed sec: other files of the package are written in
// parallel).

// secDLError decodes a Direct Line error body, {"error":{"code","message"}};
// ok is false when body is anything else.
func secDLError(body []byte) (code string, ok bool) {
	var e struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
		return "", false
	}
	return e.Error.Code, true
}

// secExpectError checks a Direct Line-shaped error answer: status, JSON
// content type, envelope, and the code when wantCode is not empty.
func secExpectError(t *testing.T, what string, status int, header http.Header, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	code, ok := secDLError(body)
	switch {
	case status != wantStatus:
		t.Errorf("%s: status %d (%q), want %d", what, status, body, wantStatus)
	case !ok:
		t.Errorf("%s: body %q is not a Direct Line error", what, body)
	case wantCode != "" && code != wantCode:
		t.Errorf("%s: code %q, want %q (%s)", what, code, wantCode, body)
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want JSON", what, ct)
	}
}

// secExpectRetryAfter checks a Retry-After of whole seconds in [lo, hi].
func secExpectRetryAfter(t *testing.T, what string, header http.Header, lo, hi int) {
	t.Helper()
	v := header.Get("Retry-After")
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		t.Errorf("%s: Retry-After %q, want %d..%d seconds", what, v, lo, hi)
	}
}

// secRequest sends a request with the given headers and body (nil: none)
// and returns status, headers and body. It gives up after 10 s, so a
// stream that opens where a refusal was expected fails the test rather
// than hanging it.
func (h *harness) secRequest(method, path string, header http.Header, body io.Reader) (int, http.Header, []byte) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, h.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// secRefusal sends a request that must be refused. A stream request goes
// through ssetest, so a stream that opens fails the test at once instead
// of being read until the request times out.
func (h *harness) secRefusal(method, path string, header http.Header, body io.Reader) (int, http.Header, []byte) {
	h.t.Helper()
	if method == http.MethodGet && strings.Contains(path, "/stream") {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		se := secRefused(ctx, h.t, "GET "+path, h.URL+path, header)
		return se.Status, se.Header, []byte(se.Body)
	}
	return h.secRequest(method, path, header, body)
}

// secRefused opens a stream that must be refused, and returns the refusal.
func secRefused(ctx context.Context, t testing.TB, what, url string, header http.Header) *ssetest.StatusError {
	t.Helper()
	s, err := ssetest.Open(ctx, url, header)
	if err == nil {
		s.Close()
		t.Fatalf("%s: the stream opened, want a refusal", what)
	}
	var se *ssetest.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("%s: %v, want an HTTP refusal", what, err)
	}
	return se
}

// secRaw sends a request on its own TCP connection: head (request line and
// headers, without the blank line ending them), then body, chunked when
// asked. The body is written by another goroutine while the answer is read,
// so an answer the server sends before it has read everything (413, 431)
// is read rather than lost to a write error.
func secRaw(t *testing.T, addr, head string, body io.Reader, chunked bool) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	wrote := make(chan struct{})
	defer func() {
		conn.Close() // unblocks the writer if the server stopped reading
		<-wrote
	}()
	go func() {
		defer close(wrote)
		if _, err := io.WriteString(conn, head+"\r\n"); err != nil || body == nil {
			return
		}
		if !chunked {
			_, _ = io.Copy(conn, body)
			return
		}
		cw := httputil.NewChunkedWriter(conn)
		if _, err := io.Copy(cw, body); err != nil {
			return
		}
		if cw.Close() == nil {
			_, _ = io.WriteString(conn, "\r\n")
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// secUpstream is the gateway's upstream HTTP transport in these tests: it
// records every REST call made to Direct Line (WebSocket dials do not go
// through it), so a test can prove that a refused request never got there.
// Failed calls count here, unlike in the fake's Stats.
type secUpstream struct {
	base *http.Transport

	mu    sync.Mutex
	calls []secCall
}

type secCall struct {
	method, path, query string
	auth                bool   // an Authorization header was sent (never kept)
	body                []byte // the body of a tokens/generate call
}

func (c secCall) String() string { return c.method + " " + c.path + "?" + c.query }

func newSecUpstream(t testing.TB) *secUpstream {
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections) // registered before the harness: runs after it stopped
	return &secUpstream{base: base}
}

func (u *secUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	call := secCall{method: r.Method, path: r.URL.EscapedPath(), query: r.URL.RawQuery,
		auth: r.Header.Get("Authorization") != ""}
	if strings.HasSuffix(call.path, "/tokens/generate") && r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		call.body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	u.mu.Lock()
	u.calls = append(u.calls, call)
	u.mu.Unlock()
	return u.base.RoundTrip(r)
}

func (u *secUpstream) snapshot() []secCall {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]secCall(nil), u.calls...)
}

// secReadUntil reads a stream until the activity whose text is last, and
// returns the texts of the non-typing activities on the way (last
// included) and the status events. Any event other than activity and
// status fails the test: nothing a client or Direct Line sends may forge
// an event.
func secReadUntil(ctx context.Context, t *testing.T, s *ssetest.Stream, last string) (texts []string, statuses []session.Status) {
	t.Helper()
	for {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %q (got %q so far): %v", last, texts, err)
		}
		switch ev.Name {
		case "status":
			var st session.Status
			if err := json.Unmarshal([]byte(ev.Data), &st); err != nil {
				t.Fatalf("status data is not JSON: %q", ev.Data)
			}
			statuses = append(statuses, st)
		case "activity":
			if strings.ContainsAny(ev.Data, "\r\n") {
				t.Errorf("activity data spans several lines: %q", ev.Data)
			}
			var a activity
			if err := json.Unmarshal([]byte(ev.Data), &a); err != nil {
				t.Fatalf("activity data is not one JSON line: %q", ev.Data)
			}
			if a.Type == "typing" {
				continue
			}
			texts = append(texts, a.Text)
			if a.Text == last {
				return texts, statuses
			}
		default:
			t.Fatalf("unexpected event %q (data %q): the framing broke", ev.Name, ev.Data)
		}
	}
}

func secEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------------------
// 1. Who may read a stream

func TestSecurityStreamAccess(t *testing.T) {
	t.Parallel()
	type presented struct {
		url    string
		header http.Header
	}
	streamPath := func(h *harness, conv string) string {
		return h.URL + "/v3/directline/conversations/" + conv + "/stream"
	}
	cases := []struct {
		name      string
		noSession bool          // nobody watches the conversation yet
		verifyTTL time.Duration // session.Config.VerifyTTL (0: default)
		present   func(t *testing.T, h *harness, conv conversation) presented
		status    int // 200: admitted
		code      string
	}{
		{
			name: "token for another conversation",
			present: func(t *testing.T, h *harness, conv conversation) presented {
				return presented{url: h.streamURL(conv.ConversationID, h.start().Token)}
			},
			status: http.StatusForbidden, code: "Forbidden",
		},
		{
			name:      "token for another conversation, no session yet",
			noSession: true,
			present: func(t *testing.T, h *harness, conv conversation) presented {
				return presented{url: h.streamURL(conv.ConversationID, h.start().Token)}
			},
			status: http.StatusForbidden, code: "Forbidden",
		},
		{
			name: "token for another conversation as Bearer",
			present: func(t *testing.T, h *harness, conv conversation) presented {
				return presented{url: streamPath(h, conv.ConversationID),
					header: http.Header{"Authorization": {"Bearer " + h.start().Token}}}
			},
			status: http.StatusForbidden, code: "Forbidden",
		},
		{
			// The session verified this very token moments ago and
			// still streams with it: an expired token must not ride on
			// that. VerifyTTL is tiny so the cache cannot answer.
			name:      "expired token",
			verifyTTL: time.Nanosecond,
			present: func(t *testing.T, h *harness, conv conversation) presented {
				h.fake.ExpireTokens()
				return presented{url: h.streamURL(conv.ConversationID, conv.Token)}
			},
			status: http.StatusForbidden, code: "TokenExpired",
		},
		{
			name: "garbage token",
			present: func(t *testing.T, h *harness, conv conversation) presented {
				return presented{url: h.streamURL(conv.ConversationID, "garbage")}
			},
			status: http.StatusForbidden, code: "Forbidden",
		},
		{
			// The header is the credential judged; a good t= beside a
			// bad Bearer does not rescue it.
			name: "garbage Bearer beside a valid t=",
			present: func(t *testing.T, h *harness, conv conversation) presented {
				return presented{url: h.streamURL(conv.ConversationID, conv.Token),
					header: http.Header{"Authorization": {"Bearer garbage"}}}
			},
			status: http.StatusForbidden, code: "Forbidden",
		},
		{
			name: "no credential",
			present: func(t *testing.T, h *harness, conv conversation) presented {
				return presented{url: streamPath(h, conv.ConversationID)}
			},
			status: http.StatusUnauthorized, code: "BadArgument",
		},
		{
			name: "empty t= and a Basic header",
			present: func(t *testing.T, h *harness, conv conversation) presented {
				basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+h.fake.Secret()))
				return presented{url: streamPath(h, conv.ConversationID) + "?t=",
					header: http.Header{"Authorization": {basic}}}
			},
			status: http.StatusUnauthorized, code: "BadArgument",
		},
		{
			// A second, valid token for the same conversation (Direct
			// Line hands one out on reconnect) joins the existing
			// session. VerifyTTL is tiny so Direct Line is asked.
			name:      "another valid token for the conversation",
			verifyTTL: time.Nanosecond,
			present: func(t *testing.T, h *harness, conv conversation) presented {
				status, _, body := h.do(http.MethodGet, "/v3/directline/conversations/"+conv.ConversationID, h.fake.Secret(), nil)
				var fresh conversation
				if err := json.Unmarshal(body, &fresh); status != http.StatusOK || err != nil || fresh.Token == "" || fresh.Token == conv.Token {
					t.Fatalf("reconnect for a fresh token: %d %s", status, body)
				}
				return presented{url: h.streamURL(conv.ConversationID, fresh.Token)}
			},
			status: http.StatusOK,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{session: session.Config{VerifyTTL: c.verifyTTL}})
			ctx := testContext(t, 10*time.Second)
			conv := h.start()
			var owner *ssetest.Stream
			if !c.noSession {
				owner = h.open(ctx, conv.StreamURL, nil)
				waitOnline(ctx, t, owner)
			}
			p := c.present(t, h, conv)

			if c.status == http.StatusOK {
				s := h.open(ctx, p.url, p.header)
				waitOnline(ctx, t, s)
				h.fake.Push(conv.ConversationID, "for both")
				expectTexts(ctx, t, owner, []string{"for both"})
				expectTexts(ctx, t, s, []string{"for both"})
				if n, st := h.mgr.Sessions(), h.fake.Stats(); n != 1 || st.SocketsOpened != 1 {
					t.Errorf("sessions %d, upstream sockets opened %d: want the second token to join the one session", n, st.SocketsOpened)
				}
				return
			}

			se := secRefused(ctx, t, c.name, p.url, p.header)
			secExpectError(t, c.name, se.Status, se.Header, []byte(se.Body), c.status, c.code)
			if strings.Contains(se.Body, conv.Token) || strings.Contains(se.Body, h.fake.Secret()) {
				t.Errorf("the refusal quotes a credential: %s", se.Body)
			}
			if c.noSession {
				// The stranger's session is gone, and the owner is
				// served as if nothing had happened.
				waitFor(t, 5*time.Second, "the refused session to retire", func() bool { return h.mgr.Sessions() == 0 })
				owner = h.open(ctx, conv.StreamURL, nil)
				waitOnline(ctx, t, owner)
			}
			// Whoever was refused, the rightful subscriber keeps its
			// stream.
			h.fake.Push(conv.ConversationID, "still served")
			expectTexts(ctx, t, owner, []string{"still served"})
		})
	}
}

// ---------------------------------------------------------------------------
// 2. Token-server mode

func TestSecurityTokenServer(t *testing.T) {
	t.Parallel()
	const good, evil = "https://good.example", "https://evil.example"
	up := newSecUpstream(t)
	fake := directlinetest.NewServer()
	t.Cleanup(fake.Close)
	secret := fake.Secret()
	h := newHarnessWithFake(t, fake, harnessOptions{
		upstream: upstream.Config{Transport: up},
		gateway: gateway.Config{
			DirectLineSecret:     secret,
			TokenOrigins:         []string{good},
			TokensPerIPPerMinute: 3,
		},
	})
	var answers [][]byte // every body the gateway answered, checked for the secret at the end
	generate := func(origin, credential string) (int, http.Header, []byte) {
		t.Helper()
		header := http.Header{}
		if origin != "" {
			header.Set("Origin", origin)
		}
		if credential != "" {
			header.Set("Authorization", "Bearer "+credential)
		}
		status, hd, body := h.secRequest(http.MethodPost, "/v3/directline/tokens/generate", header, nil)
		answers = append(answers, body)
		return status, hd, body
	}
	generateCalls := func() (n int, withAuth int) {
		for _, c := range up.snapshot() {
			if strings.HasSuffix(c.path, "/tokens/generate") {
				n++
				if c.auth {
					withAuth++
				}
			}
		}
		return n, withAuth
	}

	// An allowed page gets a token, and the token works.
	status, _, body := generate(good, "")
	var tok conversation
	if err := json.Unmarshal(body, &tok); status != http.StatusOK || err != nil || tok.Token == "" || tok.ConversationID == "" {
		t.Fatalf("token for %s: %d %s", good, status, body)
	}
	status, _, body = h.do(http.MethodPost, "/v3/directline/conversations", tok.Token, nil)
	answers = append(answers, body)
	if status != http.StatusCreated {
		t.Fatalf("starting a conversation with the token: %d %s", status, body)
	}
	if n, withAuth := generateCalls(); n != 1 || withAuth != 1 {
		t.Fatalf("upstream generate calls %d (%d with Authorization), want 1 with the secret", n, withAuth)
	}

	// Other origins get nothing, and Direct Line is not asked. They do
	// not use up the rate either (checked below).
	for _, c := range []struct{ name, origin string }{
		{"another origin", evil},
		{"no Origin", ""},
		{"an allowed origin as a prefix", good + ".evil.example"},
		{"an allowed host on another scheme", "http://good.example"},
		{"the null origin", "null"},
	} {
		status, header, body := generate(c.origin, "")
		secExpectError(t, c.name, status, header, body, http.StatusForbidden, "Forbidden")
	}
	if n, _ := generateCalls(); n != 1 {
		t.Errorf("refused origins reached Direct Line: %d generate calls, want 1", n)
	}

	// Three a minute per address: two more, then 429.
	for i := 2; i <= 3; i++ {
		if status, _, body := generate(good, ""); status != http.StatusOK {
			t.Fatalf("token %d of 3: %d %s", i, status, body)
		}
	}
	status, header, body := generate(good, "")
	secExpectError(t, "4th token in a minute", status, header, body, http.StatusTooManyRequests, "Throttled")
	secExpectRetryAfter(t, "4th token in a minute", header, 1, 60)
	if got := fake.Stats().TokensGenerated; got != 3 {
		t.Errorf("Direct Line generated %d tokens, want 3", got)
	}

	// With Authorization it is a plain proxy: the client's credential,
	// no origin check, no token-server rate, never the secret.
	status, header, body = generate(evil, "garbage")
	secExpectError(t, "generate with a garbage credential", status, header, body, http.StatusForbidden, "Forbidden")
	if n, _ := generateCalls(); n != 4 {
		t.Errorf("generate with the client's credential was not forwarded (%d upstream calls, want 4)", n)
	}
	if status, _, body := generate(evil, secret); status != http.StatusOK || !strings.Contains(string(body), `"token"`) {
		t.Errorf("generate with the client's own secret (after the token-server rate was used up): %d %s", status, body)
	}
	if got := fake.Stats().TokensGenerated; got != 4 {
		t.Errorf("Direct Line generated %d tokens, want 4", got)
	}

	for i, b := range answers {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("answer %d contains the secret: %s", i, b)
		}
	}
	h.stop()
	logs := h.logs.String()
	if !strings.Contains(logs, "/tokens/generate") {
		t.Fatalf("no request logs captured: the check would prove nothing")
	}
	if strings.Contains(logs, secret) {
		t.Errorf("the secret appears in the logs")
	}
	if strings.Contains(logs, tok.Token) {
		t.Errorf("a generated token appears in the logs")
	}
}

// Without a secret configured there is no token-server mode: a generate
// without Authorization is refused like any call without a credential.
func TestSecurityTokenGenerateWithoutSecretOrCredentialIsRefused(t *testing.T) {
	t.Parallel()
	up := newSecUpstream(t)
	h := newHarness(t, harnessOptions{
		upstream: upstream.Config{Transport: up},
		gateway:  gateway.Config{TokenOrigins: []string{"https://good.example"}},
	})
	status, header, body := h.secRequest(http.MethodPost, "/v3/directline/tokens/generate",
		http.Header{"Origin": {"https://good.example"}}, nil)
	// Refused as Direct Line would, without asking it: nothing without a
	// credential reaches Direct Line.
	secExpectError(t, "generate without a credential", status, header, body, http.StatusUnauthorized, "BadArgument")
	if calls := up.snapshot(); len(calls) != 0 {
		t.Errorf("upstream calls %v, want none", calls)
	}
	if got := h.fake.Stats().TokensGenerated; got != 0 {
		t.Errorf("Direct Line generated %d tokens", got)
	}
}

// In token-server mode the gateway speaks for the bot's secret, so what it
// asks for must be its own decision: the client's body (which names the
// user the token is bound to, and its trusted origins) must not ride along
// under the secret.
func TestSecurityTokenServerDoesNotForwardClientBody(t *testing.T) {
	t.Parallel()
	const good = "https://good.example"
	up := newSecUpstream(t)
	fake := directlinetest.NewServer()
	t.Cleanup(fake.Close)
	h := newHarnessWithFake(t, fake, harnessOptions{
		upstream: upstream.Config{Transport: up},
		gateway:  gateway.Config{DirectLineSecret: fake.Secret(), TokenOrigins: []string{good}},
	})
	status, _, body := h.secRequest(http.MethodPost, "/v3/directline/tokens/generate?extra=1",
		http.Header{"Origin": {good}, "Content-Type": {"application/json"}},
		strings.NewReader(`{"user":{"id":"dl_someone_else"},"trustedOrigins":["https://evil.example"]}`))
	if status != http.StatusOK {
		t.Fatalf("generate: %d %s", status, body)
	}
	for _, c := range up.snapshot() {
		if strings.HasSuffix(c.path, "/tokens/generate") && (bytes.Contains(c.body, []byte("dl_someone_else")) || c.query != "") {
			t.Errorf("the client's body %s and query %q went to Direct Line under the secret", c.body, c.query)
		}
	}
}

// ---------------------------------------------------------------------------
// 3. CORS

func TestSecurityCORS(t *testing.T) {
	t.Parallel()
	const app, other = "https://app.example", "https://other.example"
	cases := []struct {
		name      string
		allowed   []string
		preflight bool
		origin    string
		allow     bool // Access-Control-Allow-Origin: origin, with credentials
	}{
		{name: "preflight from an allowed origin", allowed: []string{app}, preflight: true, origin: app, allow: true},
		{name: "request from an allowed origin", allowed: []string{app}, origin: app, allow: true},
		{name: "preflight from another origin", allowed: []string{app}, preflight: true, origin: other},
		{name: "request from another origin", allowed: []string{app}, origin: other},
		{name: "no allowed origins, preflight", preflight: true, origin: app},
		{name: "no allowed origins, request", origin: app},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{gateway: gateway.Config{AllowedOrigins: c.allowed}})
			id, token := h.fake.NewConversation()
			header := http.Header{"Origin": {c.origin}}
			method, path := http.MethodGet, "/v3/directline/conversations/"+id+"/activities"
			if c.preflight {
				method, path = http.MethodOptions, "/v3/directline/conversations/"+id+"/stream"
				header.Set("Access-Control-Request-Method", "GET")
				header.Set("Access-Control-Request-Headers", "authorization,last-event-id")
			} else {
				header.Set("Authorization", "Bearer "+token)
			}
			status, got, body := h.secRequest(method, path, header, nil)

			if !c.allow {
				if v := got.Get("Access-Control-Allow-Origin"); v != "" {
					t.Errorf("Access-Control-Allow-Origin %q for %s", v, c.origin)
				}
				if c.allowed == nil {
					for k := range got {
						if strings.HasPrefix(strings.ToLower(k), "access-control-") {
							t.Errorf("CORS header %s: %q with no allowed origins", k, got.Get(k))
						}
					}
				}
				return
			}
			if v := got.Get("Access-Control-Allow-Origin"); v != c.origin {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", v, c.origin)
			}
			if v := got.Get("Access-Control-Allow-Credentials"); v != "true" {
				t.Errorf("Access-Control-Allow-Credentials %q, want true", v)
			}
			if !strings.Contains(strings.Join(got.Values("Vary"), ","), "Origin") {
				t.Errorf("Vary %q lacks Origin: a cache could serve one origin's answer to another", got.Values("Vary"))
			}
			if !c.preflight {
				if status != http.StatusOK {
					t.Errorf("request: %d %s", status, body)
				}
				if v := got.Get("Access-Control-Expose-Headers"); !strings.Contains(v, "Retry-After") {
					t.Errorf("Access-Control-Expose-Headers %q lacks Retry-After", v)
				}
				return
			}
			if status/100 != 2 {
				t.Errorf("preflight: %d %s", status, body)
			}
			allowHeaders := strings.ToLower(got.Get("Access-Control-Allow-Headers"))
			for _, want := range []string{"authorization", "last-event-id"} {
				if !strings.Contains(allowHeaders, want) {
					t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowHeaders, want)
				}
			}
			if m := got.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "GET") || !strings.Contains(m, "POST") {
				t.Errorf("Access-Control-Allow-Methods %q", m)
			}
		})
	}
}

// The SSE stream is what a browser page needs cross-origin most, and it is
// answered on a hijacked connection: the CORS middleware's headers never
// reach it, so a cross-origin EventSource is blocked by the browser.
func TestSecurityCORSOnStream(t *testing.T) {
	t.Parallel()
	const app = "https://app.example"
	h := newHarness(t, harnessOptions{gateway: gateway.Config{AllowedOrigins: []string{app}}})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	s := h.open(ctx, conv.StreamURL, http.Header{"Origin": {app}})
	if v := s.Resp.Header.Get("Access-Control-Allow-Origin"); v != app {
		t.Errorf("stream: Access-Control-Allow-Origin %q, want %q", v, app)
	}
	if v := s.Resp.Header.Get("Access-Control-Allow-Credentials"); v != "true" {
		t.Errorf("stream: Access-Control-Allow-Credentials %q, want true", v)
	}
	se := secRefused(ctx, t, "refused stream", h.streamURL(conv.ConversationID, "garbage"), http.Header{"Origin": {app}})
	if v := se.Header.Get("Access-Control-Allow-Origin"); v != app {
		t.Errorf("refused stream: Access-Control-Allow-Origin %q, want %q (a fetch-based client cannot read the status)", v, app)
	}
}

// ---------------------------------------------------------------------------
// 4. Limits

// secActivityOfChars is a message activity of exactly n characters whose
// text is made of fill.
func secActivityOfChars(n int, fill string) string {
	const prefix, suffix = `{"type":"message","from":{"id":"user1"},"text":"`, `"}`
	k := n - utf8.RuneCountInString(prefix+suffix)
	return prefix + strings.Repeat(fill, k) + suffix
}

func TestSecurityActivitySizeInCharacters(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{gateway: gateway.Config{MaxActivityChars: 1000}})
	id, token := h.fake.NewConversation()
	path := "/v3/directline/conversations/" + id + "/activities"
	// 600 "é": 1,200 bytes of text, far fewer characters than 1,000.
	sixHundredE := `{"type":"message","from":{"id":"user1"},"text":"` + strings.Repeat("é", 600) + `"}`
	cases := []struct {
		name   string
		body   string
		status int
	}{
		{"1,000 ASCII characters (the limit)", secActivityOfChars(1000, "a"), http.StatusOK},
		{"1,001 ASCII characters", secActivityOfChars(1001, "a"), http.StatusRequestEntityTooLarge},
		{"600 é, 1,200+ bytes", sixHundredE, http.StatusOK},
		{"1,000 characters, mostly é (~2,000 bytes)", secActivityOfChars(1000, "é"), http.StatusOK},
		{"1,001 characters, mostly é", secActivityOfChars(1001, "é"), http.StatusRequestEntityTooLarge},
		{"1,000 characters, mostly 4-byte runes (~3,900 bytes)", secActivityOfChars(1000, "😀"), http.StatusOK},
		{"1 MiB", secActivityOfChars(1<<20, "a"), http.StatusRequestEntityTooLarge},
	}
	accepted := 0
	for _, c := range cases {
		before := h.fake.Stats().Posts
		status, header, body := h.secRequest(http.MethodPost, path,
			http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}, strings.NewReader(c.body))
		posts := h.fake.Stats().Posts - before
		if c.status != http.StatusOK {
			secExpectError(t, c.name, status, header, body, c.status, "MessageSizeTooBig")
			if posts != 0 {
				t.Errorf("%s: forwarded to Direct Line", c.name)
			}
			continue
		}
		accepted++
		if status != http.StatusOK || posts != 1 {
			t.Errorf("%s: %d %s, %d posts upstream; want it accepted and forwarded", c.name, status, body, posts)
			continue
		}
		var sent struct{ Text string }
		_ = json.Unmarshal([]byte(c.body), &sent)
		found := false
		for _, a := range h.fake.History(id) {
			found = found || a["text"] == sent.Text
		}
		if !found {
			t.Errorf("%s: the text did not reach Direct Line intact", c.name)
		}
	}
	if got := h.fake.Stats().Posts; got != int64(accepted) {
		t.Errorf("Direct Line got %d posts, want %d", got, accepted)
	}
}

func TestSecurityMalformedActivitiesAreNotForwarded(t *testing.T) {
	t.Parallel()
	up := newSecUpstream(t)
	h := newHarness(t, harnessOptions{upstream: upstream.Config{Transport: up}})
	id, token := h.fake.NewConversation()
	path := "/v3/directline/conversations/" + id + "/activities"
	cases := []struct {
		name, body, code string
	}{
		{"not JSON", `not json`, "BadArgument"},
		{"empty", ``, "BadArgument"},
		{"whitespace", " \n\t", "BadArgument"},
		{"array", `[1,2]`, "BadArgument"},
		{"string", `"str"`, "BadArgument"},
		{"number", `5`, "BadArgument"},
		{"null", `null`, "BadArgument"},
		{"two objects", `{"type":"message"}{"type":"message"}`, "BadArgument"},
		{"trailing comma", `{"type":"message",}`, "BadArgument"},
		{"truncated", `{"type":"message"`, "BadArgument"},
		{"empty object", `{}`, "MissingProperty"},
		{"empty type", `{"type":""}`, "MissingProperty"},
		{"numeric type", `{"type":5}`, "MissingProperty"},
		{"null type", `{"type":null}`, "MissingProperty"},
		{"object type", `{"type":{"x":1}}`, "MissingProperty"},
		{"no type", `{"text":"x"}`, "MissingProperty"},
	}
	for _, c := range cases {
		status, header, body := h.secRequest(http.MethodPost, path,
			http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}, strings.NewReader(c.body))
		secExpectError(t, c.name, status, header, body, http.StatusBadRequest, c.code)
	}
	if calls := up.snapshot(); len(calls) != 0 {
		t.Errorf("malformed activities reached Direct Line: %v", calls)
	}
	if st := h.fake.Stats(); st.Posts != 0 {
		t.Errorf("Direct Line counted %d posts", st.Posts)
	}
}

func TestSecurityUploadLimit(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	cases := []struct {
		name    string
		size    int
		chunked bool
		status  int
	}{
		{"1 MiB, chunked", 1 << 20, true, http.StatusRequestEntityTooLarge},
		{"1 MiB, with Content-Length", 1 << 20, false, http.StatusRequestEntityTooLarge},
		{"limit + 1 byte, chunked", limit + 1, true, http.StatusRequestEntityTooLarge},
		{"exactly the limit, chunked", limit, true, http.StatusOK},
		{"half the limit, with Content-Length", limit / 2, false, http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// A gateway each: the fake counts the bytes of a cut upload
			// as they trickle in, after the client has its answer.
			h := newHarness(t, harnessOptions{gateway: gateway.Config{MaxUploadBytes: limit}})
			id, token := h.fake.NewConversation()
			addr := strings.TrimPrefix(h.URL, "http://")
			head := "POST /v3/directline/conversations/" + id + "/upload?userId=user1 HTTP/1.1\r\n" +
				"Host: " + addr + "\r\nAuthorization: Bearer " + token + "\r\n" +
				"Content-Type: application/octet-stream\r\nConnection: close\r\n"
			if c.chunked {
				head += "Transfer-Encoding: chunked\r\n"
			} else {
				head += "Content-Length: " + strconv.Itoa(c.size) + "\r\n"
			}
			resp, body := secRaw(t, addr, head, bytes.NewReader(bytes.Repeat([]byte("u"), c.size)), c.chunked)
			st := h.fake.Stats()
			if c.status == http.StatusOK {
				if resp.StatusCode != http.StatusOK || st.Uploads != 1 || st.UploadBytes != int64(c.size) {
					t.Errorf("%d %s; Direct Line completed %d uploads, got %d bytes: want it through whole",
						resp.StatusCode, body, st.Uploads, st.UploadBytes)
				}
				return
			}
			secExpectError(t, c.name, resp.StatusCode, resp.Header, body, c.status, "MessageSizeTooBig")
			if st.Uploads != 0 {
				t.Errorf("Direct Line completed the upload")
			}
			// Streamed, so up to the limit may have gone upstream
			// before the cut; never more.
			if st.UploadBytes > limit {
				t.Errorf("%d bytes reached Direct Line, more than the %d limit", st.UploadBytes, limit)
			}
		})
	}
}

// Request line and headers are bounded by MaxHeaderBytes (the server's
// read buffer). Beyond it fasthttp fails the read; Fiber maps that to 431,
// and the gateway's error handler gives it Direct Line's shape.
func TestSecurityOversizedRequestHeaders(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{}) // the default, 8 KiB
	id, token := h.fake.NewConversation()
	addr := strings.TrimPrefix(h.URL, "http://")
	path := "/v3/directline/conversations/" + id + "/activities"
	request := func(target, extra string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + token + "\r\n" +
			extra + "Connection: close\r\n"
	}
	cases := []struct {
		name   string
		head   string
		status int
	}{
		{"4 KiB header (fine)", request(path, "X-Filler: "+strings.Repeat("a", 4<<10)+"\r\n"), http.StatusOK},
		{"9 KiB header", request(path, "X-Filler: "+strings.Repeat("a", 9<<10)+"\r\n"), http.StatusRequestHeaderFieldsTooLarge},
		{"16 KiB header", request(path, "X-Filler: "+strings.Repeat("a", 16<<10)+"\r\n"), http.StatusRequestHeaderFieldsTooLarge},
		{"1 MiB header", request(path, "X-Filler: "+strings.Repeat("a", 1<<20)+"\r\n"), http.StatusRequestHeaderFieldsTooLarge},
		{"many small headers", request(path, strings.Repeat("X-Many: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 400)), http.StatusRequestHeaderFieldsTooLarge},
		{"16 KiB request line", request(path+"?watermark=1&pad="+strings.Repeat("a", 16<<10), ""), http.StatusRequestHeaderFieldsTooLarge},
		{"oversized stream request", request("/v3/directline/conversations/"+id+"/stream?t="+token, "X-Filler: "+strings.Repeat("a", 16<<10)+"\r\n"), http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, c := range cases {
		resp, body := secRaw(t, addr, c.head, nil, false)
		if c.status == http.StatusOK {
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %d %s", c.name, resp.StatusCode, body)
			}
			continue
		}
		secExpectError(t, c.name, resp.StatusCode, resp.Header, body, c.status, "")
	}
	if st := h.fake.Stats(); st.ActivityGets != 1 || st.SocketsOpened != 0 {
		t.Errorf("Direct Line saw %d polls and %d sockets, want only the one fine request", st.ActivityGets, st.SocketsOpened)
	}
}

func TestSecurityStreamCaps(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  gateway.Config
		// conversation (0 or 1) of the two admitted streams and of the
		// refused third
		convs  [3]int
		status int
		code   string
		// a stream on the other conversation is still admitted
		otherAdmitted bool
	}{
		{"per conversation", gateway.Config{MaxStreamsPerConversation: 2}, [3]int{0, 0, 0},
			http.StatusTooManyRequests, "Throttled", true},
		{"per address", gateway.Config{MaxStreamsPerIP: 2}, [3]int{0, 1, 0},
			http.StatusTooManyRequests, "Throttled", false},
		{"per instance", gateway.Config{MaxStreams: 2}, [3]int{0, 1, 0},
			http.StatusServiceUnavailable, "ServiceUnavailable", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// A closed client is noticed at the next write: heartbeat
			// often.
			c.cfg.Heartbeat = 20 * time.Millisecond
			h := newHarness(t, harnessOptions{gateway: c.cfg})
			ctx := testContext(t, 15*time.Second)
			convs := []conversation{h.start(), h.start()}
			url := func(i int) string { return h.streamURL(convs[i].ConversationID, convs[i].Token) }
			first := h.open(ctx, url(c.convs[0]), nil)
			h.open(ctx, url(c.convs[1]), nil)

			se := secRefused(ctx, t, "third stream", url(c.convs[2]), nil)
			secExpectError(t, "third stream", se.Status, se.Header, []byte(se.Body), c.status, c.code)
			secExpectRetryAfter(t, "third stream", se.Header, 1, 60)
			if c.otherAdmitted {
				other := h.open(ctx, url(1-c.convs[2]), nil)
				other.Close()
			}

			// A place freed is a place taken again.
			first.Close()
			var again *ssetest.Stream
			waitFor(t, 10*time.Second, "a stream admitted after one closed", func() bool {
				s, err := ssetest.Open(ctx, url(c.convs[2]), nil)
				var se *ssetest.StatusError
				switch {
				case err == nil:
					again = s
					return true
				case errors.As(err, &se) && se.Status == c.status:
					return false
				}
				t.Fatalf("while waiting for a place: %v", err)
				return false
			})
			t.Cleanup(again.Close)
			h.fake.Push(convs[c.convs[2]].ConversationID, "admitted")
			expectTexts(ctx, t, again, []string{"admitted"})
		})
	}
}

func TestSecurityRequestRateLimit(t *testing.T) {
	t.Parallel()
	// Fiber's limiter counts in fixed windows on a clock of whole seconds
	// (utils.Timestamp). A burst that straddles one of its ticks may be
	// counted in two windows and proves nothing: it is run again, on a
	// fresh gateway (fresh counters). Two ticks in a row within a burst of
	// a few milliseconds do not happen.
	for attempt := 1; ; attempt++ {
		h := newHarness(t, harnessOptions{gateway: gateway.Config{RequestsPerIP: 5}})
		ctx := testContext(t, 10*time.Second)
		id, token := h.fake.NewConversation()
		path := "/v3/directline/conversations/" + id + "/activities"
		type answer struct {
			status int
			header http.Header
			body   []byte
		}
		var answers []answer
		tick := atomic.LoadUint32(&utils.Timestamp)
		for range 6 {
			status, header, body := h.do(http.MethodGet, path, token, nil)
			answers = append(answers, answer{status, header, body})
		}
		stream, streamErr := ssetest.Open(ctx, h.streamURL(id, token), nil) // streams are requests too
		if streamErr == nil {
			defer stream.Close()
		}
		if atomic.LoadUint32(&utils.Timestamp) != tick {
			h.stop()
			if attempt == 3 {
				t.Fatal("every burst straddled a tick of the limiter's clock")
			}
			continue
		}
		for i, a := range answers[:5] {
			if a.status != http.StatusOK {
				t.Errorf("request %d of 5: %d %s", i+1, a.status, a.body)
			}
		}
		sixth := answers[5]
		secExpectError(t, "6th request in a second", sixth.status, sixth.header, sixth.body, http.StatusTooManyRequests, "Throttled")
		secExpectRetryAfter(t, "6th request in a second", sixth.header, 1, 1)
		// A stream beyond the rate is told to come back (200, status
		// unavailable, end): a 429 would make EventSource give up.
		if streamErr != nil {
			t.Errorf("a stream beyond the rate: %v, want a 200 event stream", streamErr)
		} else if ev, err := stream.NextNamed(ctx, "status"); err != nil || !strings.Contains(ev.Data, `"unavailable"`) {
			t.Errorf("a stream beyond the rate: status %q %v, want unavailable", ev.Data, err)
		} else if _, err := stream.Next(ctx); !errors.Is(err, ssetest.ErrEOF) {
			t.Errorf("a stream beyond the rate did not end: %v", err)
		}
		if got := h.fake.Stats().ActivityGets; got != 5 {
			t.Errorf("Direct Line was polled %d times, want 5: a throttled request must not be forwarded", got)
		}
		// Health checks are not throttled (they are not under /v3).
		if status, _, _ := h.do(http.MethodGet, "/healthz", "", nil); status != http.StatusOK {
			t.Errorf("healthz throttled: %d", status)
		}
		return
	}
}

// ---------------------------------------------------------------------------
// 5. Input from clients

func TestSecurityConversationIDsAreValidated(t *testing.T) {
	t.Parallel()
	up := newSecUpstream(t)
	h := newHarness(t, harnessOptions{upstream: upstream.Config{Transport: up}})
	_, token := h.fake.NewConversation()
	ids := []struct{ name, raw string }{
		{"dot-dot", ".."},
		{"dot", "."},
		{"encoded dot-dot", "%2E%2E"},
		{"encoded slash", "a%2Fb"},
		{"encoded traversal", "a%2F..%2F..%2Ftokens"},
		{"CR LF", "%0D%0A"},
		{"header injection", "a%0D%0AX-Injected:%201"},
		{"space", "a%20b"},
		{"NUL", "a%00b"},
		{"question mark", "a%3Fwatermark%3D1"},
		{"hash", "a%23b"},
		{"semicolon", "a;b"},
		{"non-ASCII", "%C3%A9t%C3%A9"},
		{"129 characters", strings.Repeat("a", 129)},
		{"200 characters", strings.Repeat("a", 200)},
	}
	routes := []struct {
		method, path, body string
	}{
		{http.MethodGet, "/v3/directline/conversations/%s", ""},
		{http.MethodGet, "/v3/directline/conversations/%s?watermark=1", ""},
		{http.MethodGet, "/v3/directline/conversations/%s/activities", ""},
		{http.MethodPost, "/v3/directline/conversations/%s/activities", `{"type":"message","text":"x"}`},
		{http.MethodPost, "/v3/directline/conversations/%s/upload?userId=user1", "bytes"},
		{http.MethodGet, "/v3/directline/conversations/%s/stream?t=" + token, ""},
	}
	for _, id := range ids {
		for _, r := range routes {
			path := fmt.Sprintf(r.path, id.raw)
			var body io.Reader
			if r.body != "" {
				body = strings.NewReader(r.body)
			}
			header := http.Header{"Content-Type": {"application/json"}}
			if !strings.Contains(r.path, "/stream") { // the stream has its t=
				header.Set("Authorization", "Bearer "+h.fake.Secret())
			}
			status, header, b := h.secRefusal(r.method, path, header, body)
			secExpectError(t, id.name+": "+r.method+" "+r.path, status, header, b, http.StatusBadRequest, "BadArgument")
		}
	}
	if calls := up.snapshot(); len(calls) != 0 {
		t.Errorf("invalid conversation ids reached Direct Line: %v", calls)
	}
	if st := h.fake.Stats(); st != (directlinetest.Stats{}) {
		t.Errorf("Direct Line counters moved: %+v", st)
	}
	if n := h.mgr.Sessions(); n != 0 {
		t.Errorf("%d sessions opened for invalid ids", n)
	}

	// The bound is 128: an id that long is asked upstream (which does not
	// know it).
	status, _, body := h.do(http.MethodGet, "/v3/directline/conversations/"+strings.Repeat("a", 128)+"/activities", h.fake.Secret(), nil)
	if status != http.StatusNotFound || len(up.snapshot()) != 1 {
		t.Errorf("128-character id: %d %s, want Direct Line's 404", status, body)
	}
}

func TestSecurityWatermarksAndCursorsAreValidated(t *testing.T) {
	t.Parallel()
	up := newSecUpstream(t)
	h := newHarness(t, harnessOptions{upstream: upstream.Config{Transport: up}})
	id, token := h.fake.NewConversation()
	stream := "/v3/directline/conversations/" + id + "/stream?t=" + token
	reconnect := "/v3/directline/conversations/" + id
	cases := []struct {
		name   string
		path   string
		header http.Header
	}{
		{"reconnect: watermark with CR LF", reconnect + "?watermark=1%0D%0AX-Injected:%201", nil},
		{"reconnect: watermark with &", reconnect + "?watermark=1%26t%3Dx", nil},
		{"reconnect: watermark with ~", reconnect + "?watermark=1%7E2", nil},
		{"reconnect: 129-character watermark", reconnect + "?watermark=" + strings.Repeat("1", 129), nil},
		{"stream: watermark with CR LF", stream + "&watermark=1%0D%0Aid:%20x", nil},
		{"stream: watermark with LF", stream + "&watermark=1%0A", nil},
		{"stream: watermark with &", stream + "&watermark=1%26t%3Dx", nil},
		{"stream: watermark with a space", stream + "&watermark=1%202", nil},
		{"Last-Event-ID: garbage", stream, http.Header{"Last-Event-ID": {"x~!!"}}},
		{"Last-Event-ID: words", stream, http.Header{"Last-Event-ID": {"hello world"}}},
		{"Last-Event-ID: short hash", stream, http.Header{"Last-Event-ID": {"1~AAAA"}}},
		{"Last-Event-ID: non-canonical hash", stream, http.Header{"Last-Event-ID": {"1~AAAAAAAAAAB"}}},
		{"Last-Event-ID: padded hash", stream, http.Header{"Last-Event-ID": {"1~AAAAAAAAAA="}}},
		{"Last-Event-ID: two separators", stream, http.Header{"Last-Event-ID": {"1~AAAAAAAAAAA~AAAAAAAAAAA"}}},
		{"Last-Event-ID: separators only", stream, http.Header{"Last-Event-ID": {"~~"}}},
		{"Last-Event-ID: a bare word", stream, http.Header{"Last-Event-ID": {"zzz"}}},
		{"Last-Event-ID: a bare watermark", stream, http.Header{"Last-Event-ID": {"1"}}},
		{"lastEventId: a bare word", stream + "&lastEventId=zzz", nil},
		{"Last-Event-ID: 300 characters", stream, http.Header{"Last-Event-ID": {strings.Repeat("1", 300)}}},
		{"Last-Event-ID: 257 characters", stream, http.Header{"Last-Event-ID": {strings.Repeat("1", 245) + "~AAAAAAAAAAA"}}},
		{"lastEventId: garbage", stream + "&lastEventId=x~%21%21", nil},
		{"lastEventId: CR LF", stream + "&lastEventId=1%0D%0Aevent:%20x", nil},
		{"lastEventId: 300 characters", stream + "&lastEventId=" + strings.Repeat("1", 300), nil},
	}
	for _, c := range cases {
		header := http.Header{}
		for k, v := range c.header {
			header[k] = v
		}
		if !strings.Contains(c.path, "t=") {
			header.Set("Authorization", "Bearer "+token)
		}
		status, got, body := h.secRefusal(http.MethodGet, c.path, header, nil)
		secExpectError(t, c.name, status, got, body, http.StatusBadRequest, "BadArgument")
	}
	if calls := up.snapshot(); len(calls) != 0 {
		t.Errorf("invalid watermarks or cursors reached Direct Line: %v", calls)
	}
	if n, st := h.mgr.Sessions(), h.fake.Stats(); n != 0 || st.SocketsOpened != 0 {
		t.Errorf("%d sessions, %d upstream sockets opened for refused streams", n, st.SocketsOpened)
	}
}

// GET activities is forwarded with the client's query string as is. It stays
// percent-encoded (no header injection), but the watermark is not checked
// like on every other route, and any other parameter rides along.
func TestSecurityPollingWatermarkIsValidated(t *testing.T) {
	t.Parallel()
	up := newSecUpstream(t)
	h := newHarness(t, harnessOptions{upstream: upstream.Config{Transport: up}})
	id, token := h.fake.NewConversation()
	for _, q := range []string{"watermark=1%0D%0AX-Injected:%201", "watermark=1%26foo%3Dbar", "watermark=" + strings.Repeat("1", 129)} {
		status, header, body := h.secRequest(http.MethodGet, "/v3/directline/conversations/"+id+"/activities?"+q,
			http.Header{"Authorization": {"Bearer " + token}}, nil)
		secExpectError(t, q, status, header, body, http.StatusBadRequest, "BadArgument")
	}
	if calls := up.snapshot(); len(calls) != 0 {
		t.Errorf("invalid watermarks reached Direct Line: %v", calls)
	}
}

// A cursor is not a secret and not bound to a conversation. One taken from
// conversation A and presented on B names an activity B does not have:
// the catch-up does not find it after the cursor's watermark and resends
// B's activities from that watermark (it would rather repeat than lose).
// So B's stream opens, repeats what B has after the watermark, and then
// carries B's new activities exactly once. Nothing of A is ever shown:
// the credential decides that.
func TestSecurityCursorFromAnotherConversation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		warm bool // B's session is open (its log holds B's activities)
	}{
		{"B's session open", true},
		{"B's session not open", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			ctx := testContext(t, 15*time.Second)

			a := h.start()
			sa := h.open(ctx, a.StreamURL, nil)
			waitOnline(ctx, t, sa)
			for _, text := range []string{"a1", "a2", "a3"} {
				h.fake.Push(a.ConversationID, text) // one set each: watermarks 1, 2, 3
			}
			evs := expectTexts(ctx, t, sa, []string{"a1", "a2", "a3"})
			foreign := evs[2].ID
			if !strings.HasPrefix(foreign, "2~") {
				t.Fatalf("A's third cursor %q: want it based on watermark 2", foreign)
			}

			// B: a conversation with three activities of its own.
			var bID, bToken string
			if c.warm {
				b := h.start()
				bID, bToken = b.ConversationID, b.Token
				keeper := h.open(ctx, b.StreamURL, nil)
				waitOnline(ctx, t, keeper)
				for _, text := range []string{"b1", "b2", "b3"} {
					h.fake.Push(bID, text)
				}
				expectTexts(ctx, t, keeper, []string{"b1", "b2", "b3"})
			} else {
				bID, bToken = h.fake.NewConversation() // no start through the gateway: no offer either
				for _, text := range []string{"b1", "b2", "b3"} {
					h.fake.Push(bID, text)
				}
			}

			s := h.open(ctx, h.streamURL(bID, bToken), http.Header{"Last-Event-ID": {foreign}})
			h.fake.Push(bID, "b4")
			texts, _ := secReadUntil(ctx, t, s, "b4")
			if !secEqual(texts, []string{"b3", "b4"}) {
				t.Errorf("B's stream from A's cursor %q delivered %q, want B's activities after watermark 2 (b3), then b4 once", foreign, texts)
			}
			h.fake.Push(bID, "b5")
			expectTexts(ctx, t, s, []string{"b5"})
		})
	}
}

// A cursor "from the future" names nothing Direct Line has. The stream opens
// and carries the conversation's new activities, exactly once.
func TestSecurityCursorFromTheFuture(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		warm   bool
		query  string // appended to the stream URL
		header string // Last-Event-ID
	}{
		{name: "hash cursor, session open", warm: true, header: "999~AAAAAAAAAAA"},
		{name: "watermark cursor, session open", warm: true, header: "999~"},
		{name: "watermark query, session open", warm: true, query: "&watermark=999"},
		{name: "lastEventId query, session open", warm: true, query: "&lastEventId=999~AAAAAAAAAAA"},
		{name: "watermark cursor, no session", header: "999~"},
		{name: "watermark query, no session", query: "&watermark=999"},
		{name: "hash cursor, no session", header: "999~AAAAAAAAAAA"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			ctx := testContext(t, 10*time.Second)
			var id, token string
			if c.warm {
				conv := h.start()
				id, token = conv.ConversationID, conv.Token
				keeper := h.open(ctx, conv.StreamURL, nil)
				waitOnline(ctx, t, keeper)
				h.fake.Push(id, "b1", "b2", "b3")
				expectTexts(ctx, t, keeper, []string{"b1", "b2", "b3"})
			} else {
				id, token = h.fake.NewConversation()
				h.fake.Push(id, "b1", "b2", "b3")
			}
			var header http.Header
			if c.header != "" {
				header = http.Header{"Last-Event-ID": {c.header}}
			}
			s := h.open(ctx, h.streamURL(id, token)+c.query, header)
			waitOnline(ctx, t, s)
			h.fake.Push(id, "later")
			texts, _ := secReadUntil(ctx, t, s, "later")
			if !secEqual(texts, []string{"later"}) {
				t.Errorf("delivered %q, want only the new activity", texts)
			}
			h.fake.Push(id, "tail")
			expectTexts(ctx, t, s, []string{"tail"})
		})
	}
}

// A client's future watermark must not decide where the session that
// serves everybody reads Direct Line from.
func TestSecurityFutureWatermarkDoesNotPoisonColdSession(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t, 10*time.Second)
	id, token := h.fake.NewConversation()
	h.fake.Push(id, "b1", "b2", "b3")
	s := h.open(ctx, h.streamURL(id, token), http.Header{"Last-Event-ID": {"999~"}})
	waitOnline(ctx, t, s)
	opened := h.fake.Stats().SocketsOpened
	h.fake.DropSockets(id)
	h.fake.Push(id, "while down")
	if err := h.fake.WaitFor(ctx, func(st directlinetest.Stats) bool { return st.SocketsOpened > opened }); err != nil {
		t.Fatal(err)
	}
	h.fake.Push(id, "after")
	texts, _ := secReadUntil(ctx, t, s, "after")
	if !secEqual(texts, []string{"while down", "after"}) {
		t.Errorf("delivered %q, want [while down after]", texts)
	}
}

// Newlines in anything that ends up in an event (an activity's text, a
// status reason quoting Direct Line) never break the SSE framing.
func TestSecurityNewlinesNeverBreakFraming(t *testing.T) {
	t.Parallel()
	const evil = "\n\nevent: evil\ndata: x"
	h := newHarness(t, harnessOptions{session: session.Config{BackoffBase: 50 * time.Millisecond}})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)

	texts := []string{"line1" + evil, "cr\r\rid: 1\revent: evil\rdata: y", "crlf\r\n\r\nretry: 1\r\n", "nul\x00", "\u2028\u2029"}
	for _, text := range texts {
		h.fake.Push(conv.ConversationID, text)
	}
	h.fake.Push(conv.ConversationID, "end of texts")
	got, _ := secReadUntil(ctx, t, s, "end of texts")
	if !secEqual(got, append(texts, "end of texts")) {
		t.Errorf("activities %q, want %q", got, texts)
	}
	if s.Retry() != 3*time.Second {
		t.Errorf("retry hint %v: an activity's text set it", s.Retry())
	}

	// A status reason quotes Direct Line's error code. Three failures in a
	// row, with the backoff below, keep that reason up long enough for the
	// stream to write it (statuses are coalesced).
	h.fake.FailNext(3, http.StatusServiceUnavailable, "Evil"+evil, "")
	h.fake.DropSockets(conv.ConversationID)
	h.fake.Push(conv.ConversationID, "after the drop")
	_, statuses := secReadUntil(ctx, t, s, "after the drop")
	quoted := false
	for _, st := range statuses {
		quoted = quoted || strings.Contains(st.Reason, "Evil"+evil)
	}
	if !quoted {
		t.Errorf("statuses %+v: want a reason quoting the error code, newlines intact", statuses)
	}
}

// ---------------------------------------------------------------------------
// 6. Frames from Direct Line

func TestSecurityMalformedUpstreamFrames(t *testing.T) {
	t.Parallel()
	const marker = "MARKER-frame-content"
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	id := conv.ConversationID
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	h.fake.Push(id, "before")
	expectTexts(ctx, t, s, []string{"before"})
	opened := h.fake.Stats().SocketsOpened
	// Ids outside the fake's sequence, so they collide with nothing; the
	// watermark of the mixed set is the fake's current one, so nothing is
	// skipped on a later reconnect.
	wm := len(h.fake.History(id))
	foreignID := func(n int) string { return fmt.Sprintf("%s|%07d", id, 9_999_990+n) }

	frames := []struct{ name, data string }{
		{"not JSON", `{not json "` + marker + `"`},
		{"JSON array", `[1,2]`},
		{"JSON string", `"str"`},
		{"JSON number", `5`},
		{"JSON null", `null`},
		{"unknown root type", `{"foo":1,"text":"` + marker + `"}`},
		{"activities not an array", `{"activities":"x"}`},
		{"watermark an object", `{"activities":[],"watermark":{"a":1}}`},
		{"raw control character", "{\"activities\":[{\"type\":\"message\",\"id\":\"" + foreignID(0) + "\",\"text\":\"a\rb\"}]}"},
		{"mixed set", fmt.Sprintf(`{"activities":[1,"x",null,[],{"type":"message","id":"%s","text":"ok"}],"watermark":"%d"}`, foreignID(1), wm)},
		{"id with a newline", `{"activities":[{"type":"message","id":"` + foreignID(2) + `\nevent: evil","text":"id with a newline"}]}`},
		{"watermark with a newline", `{"activities":[{"type":"message","id":"` + foreignID(3) + `","text":"watermark with a newline"}],"watermark":"1\nevent: evil"}`},
		{"pretty-printed", "{\n\n\"activities\": [\n\n{\"type\": \"message\",\n\n\"id\": \"" + foreignID(4) + "\",\r\n\"text\": \"pretty-printed\"}\n]\n}\n"},
	}
	for _, f := range frames {
		if err := h.fake.SendRaw(id, []byte(f.data)); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
	}
	h.fake.Push(id, "after")
	texts, _ := secReadUntil(ctx, t, s, "after")
	want := []string{"ok", "id with a newline", "watermark with a newline", "pretty-printed", "after"}
	if !secEqual(texts, want) {
		t.Errorf("delivered %q, want %q", texts, want)
	}
	h.fake.Push(id, "tail")
	expectTexts(ctx, t, s, []string{"tail"})
	if got := h.fake.Stats().SocketsOpened; got != opened {
		t.Errorf("upstream sockets opened %d → %d: a bad frame cost a reconnect", opened, got)
	}
	if logs := h.logs.String(); strings.Contains(logs, marker) {
		t.Errorf("a frame's content was logged")
	} else if !strings.Contains(logs, "malformed upstream") {
		t.Errorf("bad frames were not logged")
	}
}

func TestSecurityOversizedUpstreamFrame(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{upstream: upstream.Config{ReadLimit: 4096}})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	id := conv.ConversationID
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	h.fake.Push(id, "before")
	expectTexts(ctx, t, s, []string{"before"})
	opened := h.fake.Stats().SocketsOpened

	big := fmt.Sprintf(`{"activities":[{"type":"message","id":"%s|9999999","text":"%s"}]}`, id, strings.Repeat("x", 8<<10))
	if err := h.fake.SendRaw(id, []byte(big)); err != nil {
		t.Fatal(err)
	}
	h.fake.Push(id, "during")
	if err := h.fake.WaitFor(ctx, func(st directlinetest.Stats) bool { return st.SocketsOpened > opened }); err != nil {
		t.Fatalf("the session did not reconnect after an oversized frame: %v", err)
	}
	h.fake.Push(id, "after")
	texts, _ := secReadUntil(ctx, t, s, "after")
	if !secEqual(texts, []string{"during", "after"}) {
		t.Errorf("delivered %q, want [during after] exactly once", texts)
	}
}

// An activity Direct Line really holds that exceeds the read limit is
// replayed on every reconnect, and every reconnect fails on it again.
func TestSecurityOversizedActivityInHistory(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{upstream: upstream.Config{ReadLimit: 4096}})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	h.fake.Push(conv.ConversationID, "before")
	expectTexts(ctx, t, s, []string{"before"})
	h.fake.Push(conv.ConversationID, strings.Repeat("x", 6000))
	h.fake.Push(conv.ConversationID, "after")
	texts, _ := secReadUntil(ctx, t, s, "after")
	if texts[len(texts)-1] != "after" {
		t.Errorf("delivered %q", texts)
	}
}
