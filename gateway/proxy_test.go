package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/upstream"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

func TestUploadIsStreamedThrough(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t, 20*time.Second)
	conv := h.start()

	pr, pw := io.Pipe()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost,
		h.URL+"/v3/directline/conversations/"+conv.ConversationID+"/upload?userId=user1", pr)
	req.Header.Set("Authorization", "Bearer "+conv.Token)
	req.Header.Set("Content-Type", "application/octet-stream")
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()

	chunk := bytes.Repeat([]byte("x"), 1<<20)
	if _, err := pw.Write(chunk); err != nil {
		t.Fatal(err)
	}
	// The first MiB reaches Direct Line while the client is still
	// sending: the gateway does not hold uploads whole.
	if err := h.fake.WaitFor(ctx, func(st directlinetest.Stats) bool { return st.UploadBytes >= 1<<20 }); err != nil {
		t.Fatalf("upload not streamed: upstream got %d bytes before the client finished", h.fake.Stats().UploadBytes)
	}
	for range 4 {
		if _, err := pw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	pw.Close()
	r := <-done
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("upload: %d %v", r.status, r.err)
	}
	if got := h.fake.Stats().UploadBytes; got != 5<<20 {
		t.Errorf("upstream received %d bytes, want %d", got, 5<<20)
	}
}

func TestUpstreamStatusAndErrorBodyPassThrough(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	conv := h.start()
	path := "/v3/directline/conversations/" + conv.ConversationID + "/activities"
	msg := map[string]any{"type": "message", "text": "x"}

	h.fake.FailNext(1, http.StatusBadGateway, "BotError", "")
	status, _, body := h.do(http.MethodPost, path, conv.Token, msg)
	if status != http.StatusBadGateway || !strings.Contains(string(body), `"BotError"`) {
		t.Errorf("502: got %d %s", status, body)
	}

	h.fake.FailNext(1, http.StatusTooManyRequests, "Throttled", "7")
	status, header, body := h.do(http.MethodPost, path, conv.Token, msg)
	if status != http.StatusTooManyRequests || header.Get("Retry-After") != "7" {
		t.Errorf("429: got %d Retry-After %q %s", status, header.Get("Retry-After"), body)
	}

	status, _, body = h.do(http.MethodGet, "/v3/directline/conversations/nosuchconversation/activities", h.fake.Secret(), nil)
	if status != http.StatusNotFound {
		t.Errorf("unknown conversation: %d %s", status, body)
	}

	status, _, body = h.do(http.MethodGet, path, "", nil)
	if status != http.StatusUnauthorized {
		t.Errorf("no credential: %d %s", status, body)
	}

	// Polling works through the gateway and sees the posts above.
	h.post(conv.ConversationID, conv.Token, "polled")
	status, _, body = h.do(http.MethodGet, path+"?watermark=0", conv.Token, nil)
	if status != http.StatusOK || !strings.Contains(string(body), "echo: polled") {
		t.Errorf("poll: %d %s", status, body)
	}
}

func TestGatewayErrorsAreDirectLineShaped(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/v3/directline/nothing-here", http.StatusNotFound},
		{http.MethodGet, "/v3/directline/conversations/bad%20id/activities", http.StatusBadRequest},
		{http.MethodGet, "/v3/directline/conversations/a%2F..%2Fb/activities", http.StatusBadRequest},
		{http.MethodGet, "/v3/directline/conversations/abc?watermark=1%0D%0AX:1", http.StatusBadRequest},
	} {
		status, header, body := h.do(c.method, c.path, h.fake.Secret(), nil)
		var e struct {
			Error struct{ Code, Message string }
		}
		if status != c.status || json.Unmarshal(body, &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Errorf("%s %s: %d %q, want %d with a Direct Line error", c.method, c.path, status, body, c.status)
		}
		if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: content type %q", c.path, ct)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	if status, _, _ := h.do(http.MethodGet, "/healthz", "", nil); status != http.StatusOK {
		t.Errorf("healthz %d", status)
	}
	if status, _, _ := h.do(http.MethodGet, "/readyz", "", nil); status != http.StatusOK {
		t.Errorf("readyz %d", status)
	}
}

// TestNoCredentialInLogs runs a whole conversation with debug logging —
// start, stream, post, reconnect, a refused stream — and fails if the
// secret or any token appears in a log line.
func TestNoCredentialInLogs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t, 10*time.Second)
	conv := h.start()
	s := h.open(ctx, conv.StreamURL, nil)
	waitOnline(ctx, t, s)
	h.post(conv.ConversationID, conv.Token, "hello")
	nextActivity(ctx, t, s)
	h.fake.DropSockets(conv.ConversationID)
	waitOnline(ctx, t, s)
	_, _, body := h.do(http.MethodGet, "/v3/directline/conversations/"+conv.ConversationID+"?watermark=1", conv.Token, nil)
	var rc conversation
	_ = json.Unmarshal(body, &rc)
	other := h.start()
	_, _ = openExpectingError(ctx, h.streamURL(conv.ConversationID, other.Token))
	h.fake.FailNext(1, http.StatusBadGateway, "BotError", "")
	h.do(http.MethodPost, "/v3/directline/conversations/"+conv.ConversationID+"/activities", conv.Token, map[string]any{"type": "message"})
	s.Close()
	h.stop()

	logs := h.logs.String()
	if !strings.Contains(logs, conv.ConversationID) {
		t.Fatalf("no session logs captured: the check would prove nothing")
	}
	for name, secret := range map[string]string{
		"secret": h.fake.Secret(), "token": conv.Token, "reconnect token": rc.Token, "other token": other.Token,
	} {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("the %s appears in the logs", name)
		}
	}
	if strings.Contains(logs, "t=") {
		t.Errorf("a t= query parameter appears in the logs")
	}
}

func openExpectingError(ctx context.Context, url string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Uploads get UploadTimeout for their body, not the REST ReadTimeout, and a
// client whose upload fails (too large) is not held against Direct Line: the
// breaker stays closed.
func TestUploadTimeoutAndClientFailuresSpareTheBreaker(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{
		gateway: gateway.Config{ReadTimeout: 300 * time.Millisecond, UploadTimeout: 10 * time.Second, MaxUploadBytes: 64 << 10},
		upstream: upstream.Config{Breaker: gobreaker.Settings{
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 2 },
		}},
	})
	ctx := testContext(t, 20*time.Second)
	conv := h.start()
	uploadURL := h.URL + "/v3/directline/conversations/" + conv.ConversationID + "/upload?userId=user1"

	// A slow upload, longer than ReadTimeout, within the limit.
	pr, pw := io.Pipe()
	go func() {
		defer pw.Close()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range 8 { // 8 × 1 KiB over ~800 ms
			<-tick.C
			if _, err := pw.Write(bytes.Repeat([]byte("s"), 1024)); err != nil {
				return
			}
		}
	}()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, uploadURL, pr)
	req.Header.Set("Authorization", "Bearer "+conv.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("slow upload: %v %v", resp, err)
	}
	resp.Body.Close()

	// Oversized uploads: 413 each, and the breaker does not open.
	for i := range 4 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, uploadURL, io.LimitReader(zeros{}, 1<<20))
		req.Header.Set("Authorization", "Bearer "+conv.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue // the gateway may close the connection mid-body
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("oversized upload %d: status %d, want 413", i, resp.StatusCode)
		}
	}
	if st := h.up.BreakerState(); st != gobreaker.StateClosed {
		t.Errorf("breaker %v after client-side upload failures, want closed", st)
	}
	if status, _, _ := h.do(http.MethodGet, "/readyz", "", nil); status != http.StatusOK {
		t.Errorf("readyz %d after client-side upload failures", status)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
