package directlinetest

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingBot counts OnStart calls and otherwise behaves like EchoBot.
type countingBot struct {
	EchoBot
	starts atomic.Int64
}

func (b *countingBot) OnStart(*Conv) { b.starts.Add(1) }

func TestGeneratedTokenStarts201Then200(t *testing.T) {
	bot := &countingBot{}
	s := newTestServer(t, WithBot(bot))

	gen := call(t, s, "POST", "/tokens/generate", s.Secret(), map[string]any{"user": map[string]any{"id": "dl_u1", "name": "U"}})
	mustStatus(t, "generate", gen, http.StatusOK, "")
	convID, tok := gen.str("conversationId"), gen.str("token")
	if convID == "" || tok == "" {
		t.Fatalf("generate body %v", gen.body)
	}
	if got := gen.body["expires_in"]; got != json.Number("1800") {
		t.Errorf("expires_in = %v, want 1800", got)
	}
	if bot.starts.Load() != 0 {
		t.Errorf("generate contacted the bot")
	}

	first := call(t, s, "POST", "/conversations", tok, nil)
	mustStatus(t, "first start", first, http.StatusCreated, "")
	if first.str("conversationId") != convID || first.str("token") != tok {
		t.Errorf("first start body %v", first.body)
	}
	url1 := first.str("streamUrl")
	if !strings.HasPrefix(url1, "ws://127.0.0.1:") || !strings.Contains(url1, "/v3/directline/conversations/"+convID+"/stream?t=") {
		t.Errorf("streamUrl %q", url1)
	}
	if first.str("referenceGrammarId") == "" {
		t.Errorf("no referenceGrammarId")
	}

	second := call(t, s, "POST", "/conversations", tok, nil)
	mustStatus(t, "second start", second, http.StatusOK, "")
	if second.str("conversationId") != convID || second.str("streamUrl") == url1 || second.str("streamUrl") == "" {
		t.Errorf("second start body %v", second.body)
	}
	if n := bot.starts.Load(); n != 1 {
		t.Errorf("OnStart called %d times, want 1", n)
	}
	if st := s.Stats(); st.TokensGenerated != 1 || st.StartCalls != 2 {
		t.Errorf("stats %+v", st)
	}

	// A generate with a malformed body creates nothing.
	bad := call(t, s, "POST", "/tokens/generate", s.Secret(), "{")
	mustStatus(t, "malformed generate", bad, http.StatusBadRequest, "BadArgument")
}

func TestAuthenticationFailures(t *testing.T) {
	s := newTestServer(t)
	convA, tokA, _ := start(t, s)
	convB, tokB, _ := start(t, s)
	_ = tokB

	raw := func(what, method, path, header string) result {
		t.Helper()
		req, err := http.NewRequestWithContext(testCtx(t), method, s.URL+basePath+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		return do(t, s, req)
	}
	mustStatus(t, "no header", raw("", "GET", "/conversations/"+convA+"/activities", ""), http.StatusUnauthorized, "BadArgument")
	mustStatus(t, "basic", raw("", "GET", "/conversations/"+convA+"/activities", "Basic abc"), http.StatusUnauthorized, "BadArgument")
	mustStatus(t, "empty bearer", raw("", "GET", "/conversations/"+convA+"/activities", "Bearer "), http.StatusUnauthorized, "BadArgument")

	mustStatus(t, "unknown token", call(t, s, "GET", "/conversations/"+convA+"/activities", "nope", nil), http.StatusForbidden, "Forbidden")
	mustStatus(t, "foreign token", call(t, s, "GET", "/conversations/"+convB+"/activities", tokA, nil), http.StatusForbidden, "Forbidden")
	mustStatus(t, "foreign token post", call(t, s, "POST", "/conversations/"+convB+"/activities", tokA, map[string]any{"type": "message"}), http.StatusForbidden, "Forbidden")
	mustStatus(t, "generate with token", call(t, s, "POST", "/tokens/generate", tokA, nil), http.StatusForbidden, "Forbidden")
	mustStatus(t, "refresh with secret", call(t, s, "POST", "/tokens/refresh", s.Secret(), nil), http.StatusForbidden, "Forbidden")

	nf := call(t, s, "GET", "/conversations/nosuch", s.Secret(), nil)
	mustStatus(t, "unknown conversation", nf, http.StatusNotFound, "BadArgument")
	if msg := field(nf.body, "error", "message"); msg != "Conversation not found" {
		t.Errorf("404 message %q", msg)
	}
	mustStatus(t, "unknown conversation post", call(t, s, "POST", "/conversations/nosuch/activities", s.Secret(), map[string]any{"type": "message"}), http.StatusNotFound, "BadArgument")

	s.ExpireTokens()
	mustStatus(t, "expired start", call(t, s, "POST", "/conversations", tokA, nil), http.StatusForbidden, "TokenExpired")
	mustStatus(t, "expired refresh", call(t, s, "POST", "/tokens/refresh", tokA, nil), http.StatusForbidden, "TokenExpired")
	mustStatus(t, "expired post", call(t, s, "POST", "/conversations/"+convA+"/activities", tokA, map[string]any{"type": "message"}), http.StatusForbidden, "TokenExpired")
	mustStatus(t, "expired reconnect", call(t, s, "GET", "/conversations/"+convA, tokA, nil), http.StatusForbidden, "TokenExpired")
	// The secret never expires, and tokens issued afterwards are fresh.
	mustStatus(t, "secret after expiry", call(t, s, "GET", "/conversations/"+convA+"/activities", s.Secret(), nil), http.StatusOK, "")
	_, tokC, _ := start(t, s)
	mustStatus(t, "new token after expiry", call(t, s, "POST", "/tokens/refresh", tokC, nil), http.StatusOK, "")
}

func TestRefreshKeepsOldTokenValid(t *testing.T) {
	s := newTestServer(t)
	convID, tok, _ := start(t, s)

	r := call(t, s, "POST", "/tokens/refresh", tok, nil)
	mustStatus(t, "refresh", r, http.StatusOK, "")
	fresh := r.str("token")
	if fresh == "" || fresh == tok || r.str("conversationId") != convID || r.body["expires_in"] != json.Number("1800") {
		t.Fatalf("refresh body %v", r.body)
	}
	for _, tk := range []string{tok, fresh} {
		mustStatus(t, "use token", call(t, s, "GET", "/conversations/"+convID+"/activities", tk, nil), http.StatusOK, "")
	}
	if st := s.Stats(); st.TokensRefreshed != 1 {
		t.Errorf("TokensRefreshed = %d", st.TokensRefreshed)
	}
}

func TestTokenTTL(t *testing.T) {
	s := newTestServer(t, WithTokenTTL(time.Nanosecond))
	gen := call(t, s, "POST", "/tokens/generate", s.Secret(), nil)
	mustStatus(t, "generate", gen, http.StatusOK, "")
	if gen.body["expires_in"] != json.Number("0") {
		t.Errorf("expires_in %v", gen.body["expires_in"])
	}
	mustStatus(t, "start with expired token", call(t, s, "POST", "/conversations", gen.str("token"), nil), http.StatusForbidden, "TokenExpired")
}

func TestCustomSecret(t *testing.T) {
	s := newTestServer(t, WithSecret("s3cret"))
	if s.Secret() != "s3cret" {
		t.Fatalf("Secret() = %q", s.Secret())
	}
	mustStatus(t, "default secret", call(t, s, "POST", "/conversations", DefaultSecret, nil), http.StatusForbidden, "Forbidden")
	mustStatus(t, "custom secret", call(t, s, "POST", "/conversations", "s3cret", nil), http.StatusCreated, "")
}
