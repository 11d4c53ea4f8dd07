package directlinetest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every wait in the tests; nothing here should take more
// than a fraction of it.
const testTimeout = 10 * time.Second

// newTestServer starts a Server without keepalives (so tests can read exact
// message sequences) that is closed when the test ends.
func newTestServer(t *testing.T, opts ...Option) *Server {
	t.Helper()
	s := NewServer(append([]Option{WithKeepalive(0), WithLogf(t.Logf)}, opts...)...)
	t.Cleanup(s.Close)
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// result is a decoded HTTP answer.
type result struct {
	status int
	header http.Header
	body   map[string]any
}

// errCode returns the Direct Line error code of the answer, if any.
func (r result) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r result) str(key string) string {
	v, _ := r.body[key].(string)
	return v
}

// call makes a REST call to path (relative to /v3/directline). body may be
// nil, a string (sent verbatim) or a value encoded as JSON. auth is the
// bearer credential, or "" for no Authorization header.
func call(t *testing.T, s *Server, method, path, auth string, body any) result {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(testCtx(t), method, s.URL+basePath+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return do(t, s, req)
}

func do(t *testing.T, s *Server, req *http.Request) result {
	t.Helper()
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := result{status: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		_ = dec.Decode(&r.body)
	}
	return r
}

// mustStatus fails the test unless r has the given status (and, if code is
// not empty, that Direct Line error code).
func mustStatus(t *testing.T, what string, r result, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d (body %v)", what, r.status, status, r.body)
	}
	if code != "" && r.errCode() != code {
		t.Fatalf("%s: error code %q, want %q (body %v)", what, r.errCode(), code, r.body)
	}
}

// start starts a new conversation with the secret and returns its id, token
// and streamUrl.
func start(t *testing.T, s *Server) (convID, token, streamURL string) {
	t.Helper()
	r := call(t, s, "POST", "/conversations", s.Secret(), nil)
	mustStatus(t, "start", r, http.StatusCreated, "")
	return r.str("conversationId"), r.str("token"), r.str("streamUrl")
}

// post posts a user message and returns the activity id.
func post(t *testing.T, s *Server, convID, auth, text string) string {
	t.Helper()
	r := call(t, s, "POST", "/conversations/"+convID+"/activities", auth, map[string]any{
		"type": "message", "from": map[string]any{"id": "user1", "role": "user"}, "text": text,
	})
	mustStatus(t, "post", r, http.StatusOK, "")
	return r.str("id")
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, resp, err := dialRaw(url)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialRaw(url string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: testTimeout}
	c, resp, err := d.Dial(url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return c, resp, err
}

// set is a decoded ActivitySet; Watermark is nil when the field is absent.
type set struct {
	Activities []map[string]any `json:"activities"`
	Watermark  *string          `json:"watermark"`
}

func (s set) wm() string {
	if s.Watermark == nil {
		return "<none>"
	}
	return *s.Watermark
}

// readSet reads the next ActivitySet, skipping keepalives.
func readSet(t *testing.T, c *websocket.Conn) set {
	t.Helper()
	for {
		raw := readRaw(t, c)
		if len(raw) == 0 {
			continue
		}
		var st set
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatalf("decoding set %q: %v", raw, err)
		}
		return st
	}
}

func readRaw(t *testing.T, c *websocket.Conn) []byte {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	typ, raw, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("reading socket: %v", err)
	}
	if typ != websocket.TextMessage {
		t.Fatalf("message type %d, want text", typ)
	}
	return raw
}

// readErr reads until the socket fails and returns the error.
func readErr(t *testing.T, c *websocket.Conn) error {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			return err
		}
	}
}

func texts(acts []map[string]any) []string {
	out := make([]string, len(acts))
	for i, a := range acts {
		out[i], _ = a["text"].(string)
	}
	return out
}

func field(a map[string]any, path ...string) any {
	var v any = a
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}
