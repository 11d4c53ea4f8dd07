package upstream_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/dlsse/dlsse/upstream"
)

// A request the caller built wrong (a control character in a header, the
// shape of a forged credential) is refused before the breaker admits it:
// it never reaches Direct Line and never counts as a failure.
func TestInvalidRequestsNeverReachTheBreaker(t *testing.T) {
	fake := newFake(t)
	c, tr := newClient(t, fake.URL, upstream.Config{Breaker: trip3(time.Minute)})
	conv, tok := fake.NewConversation()
	for i, cred := range []string{"\n", "a\r\nX-Injected: 1", "\x00", "a\x7fb"} {
		for range 3 {
			_, err := c.Activities(testCtx(t), cred, conv, "")
			if !errors.Is(err, upstream.ErrInvalidRequest) {
				t.Fatalf("credential #%d: %v, want ErrInvalidRequest", i, err)
			}
		}
		h := http.Header{"Authorization": {"Bearer " + cred}}
		if _, err := c.Forward(testCtx(t), http.MethodGet, "/conversations/"+conv+"/activities", "", h, nil); !errors.Is(err, upstream.ErrInvalidRequest) {
			t.Fatalf("forward #%d: %v, want ErrInvalidRequest", i, err)
		}
	}
	if n := tr.n.Load(); n != 0 {
		t.Errorf("%d requests were sent", n)
	}
	if s := c.BreakerState(); s != gobreaker.StateClosed {
		t.Fatalf("breaker %v, want closed", s)
	}
	if _, err := c.Activities(testCtx(t), tok, conv, ""); err != nil {
		t.Fatal(err)
	}
}

// A 502 or 504 to a post or an upload is the bot's verdict on that activity,
// relayed by a working Direct Line: it does not open the breaker. The same
// status on any other call does.
func TestBotFailuresDoNotOpenTheBreaker(t *testing.T) {
	fake := newFake(t)
	c, _ := newClient(t, fake.URL, upstream.Config{Breaker: trip3(time.Minute)})
	conv, tok := fake.NewConversation()
	h := http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}}
	for _, status := range []int{http.StatusBadGateway, http.StatusGatewayTimeout} {
		fake.FailNext(10, status, "BotError", "")
		for range 5 {
			resp, err := c.Forward(testCtx(t), http.MethodPost, "/conversations/"+conv+"/activities", "", h,
				strings.NewReader(`{"type":"message","text":"poison"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != status {
				t.Fatalf("post: %d, want %d", resp.StatusCode, status)
			}
			resp, err = c.Forward(testCtx(t), http.MethodPost, "/conversations/"+conv+"/upload", "userId=u", h, strings.NewReader("file"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	fake.FailNext(0, 0, "", "")
	if s := c.BreakerState(); s != gobreaker.StateClosed {
		t.Fatalf("breaker %v after the bot's failures, want closed", s)
	}
	fake.FailNext(3, http.StatusBadGateway, "", "")
	for range 3 {
		_, _ = c.Activities(testCtx(t), tok, conv, "")
	}
	if s := c.BreakerState(); s != gobreaker.StateOpen {
		t.Fatalf("breaker %v after three 502s to polls, want open", s)
	}
}

func TestValidCredential(t *testing.T) {
	for s, want := range map[string]bool{
		"abc":                       true,
		"ew0KICAiYWxnIjog.x-y_z~+/": true,
		"abc==":                     true,
		"":                          false,
		"=":                         false,
		"==abc":                     false,
		"a=b":                       false,
		"a b":                       false,
		"a\n":                       false,
		"é":                         false,
		strings.Repeat("a", upstream.MaxCredentialLen):   true,
		strings.Repeat("a", upstream.MaxCredentialLen+1): false,
	} {
		if got := upstream.ValidCredential(s); got != want {
			t.Errorf("ValidCredential(%q) = %v, want %v", s, got, want)
		}
	}
}
