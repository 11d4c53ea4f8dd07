package session_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"

	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/upstream"
)

// TestUpstreamTokenRefreshedAtHalfItsLife: a session refreshes the token it
// calls Direct Line with when half of the lifetime Direct Line told is
// left, whether that lifetime came with the start answer (an offer) or a
// reconnect answer, and again for the refreshed token. In a synctest bubble
// the clock is fake, so "half" is checked exactly, not within a slack that
// a refresh at 90 % of the life would also meet.
func TestUpstreamTokenRefreshedAtHalfItsLife(t *testing.T) {
	for _, offer := range []bool{true, false} {
		t.Run(fmt.Sprintf("offer=%v", offer), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { checkRefreshAtHalfLife(t, offer) })
		})
	}
}

func checkRefreshAtHalfLife(t *testing.T, offer bool) {
	const life = time.Hour
	dl := &memDirectLine{life: life, told: map[string]time.Time{}}
	up, err := upstream.New(upstream.Config{
		BaseURL:   "http://directline.invalid",
		Transport: dl,
		// The session's failing reconnects must not open the breaker:
		// the refresh goes through it too.
		Breaker: gobreaker.Settings{ReadyToTrip: func(gobreaker.Counts) bool { return false }},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := session.NewManager(up, session.Config{BackoffBase: time.Second, BackoffMax: time.Minute, Logger: zerolog.Nop()})
	defer func() {
		if err := m.Close(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	if offer {
		dl.tell("tok0")
		m.Offer("conv", session.Offer{StreamURL: unreachable, Credentials: []string{"tok0"}, Token: "tok0", ExpiresIn: int(life / time.Second)})
	}
	sub, err := m.Subscribe(t.Context(), session.Request{ConversationID: "conv", Credential: "tok0"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	time.Sleep(life + time.Minute)
	synctest.Wait()
	refreshes := dl.refreshLog()
	if len(refreshes) < 2 {
		t.Fatalf("%d refreshes in %v of a %v token: %v", len(refreshes), life+time.Minute, life, refreshes)
	}
	for _, r := range refreshes[:2] {
		if after := r.at.Sub(dl.toldAt(r.token)); after != life/2 {
			t.Errorf("%s refreshed %v after Direct Line told its %v lifetime, want %v (half of it)", r.token, after, life, life/2)
		}
	}
}

// unreachable is a stream URL Dial refuses at once (no socket in a bubble):
// the session stays in its reconnect loop and only its timers act.
const unreachable = "ftp://directline.invalid/stream"

// memDirectLine answers a session's REST calls in memory. Its first
// reconnect answer tells the token's lifetime, later ones are 503 (the
// session keeps retrying without learning anything new); each refresh
// issues the next token, tok1, tok2, ….
type memDirectLine struct {
	life time.Duration

	mu         sync.Mutex
	told       map[string]time.Time // token -> when its lifetime was told
	reconnects int
	refreshes  []refresh
}

type refresh struct {
	token string
	at    time.Time
}

// String shows the time of day: a bubble's clock starts at midnight.
func (r refresh) String() string { return r.token + " at " + r.at.UTC().Format(time.TimeOnly) }

func (dl *memDirectLine) tell(token string) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	dl.told[token] = time.Now()
}

func (dl *memDirectLine) toldAt(token string) time.Time {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	return dl.told[token]
}

func (dl *memDirectLine) refreshLog() []refresh {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	return append([]refresh(nil), dl.refreshes...)
}

func (dl *memDirectLine) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	expires := strconv.Itoa(int(dl.life / time.Second))
	dl.mu.Lock()
	defer dl.mu.Unlock()
	switch path := strings.TrimPrefix(r.URL.Path, "/v3/directline"); {
	case r.Method == http.MethodPost && path == "/tokens/refresh":
		dl.refreshes = append(dl.refreshes, refresh{token, time.Now()})
		next := "tok" + strconv.Itoa(len(dl.refreshes))
		dl.told[next] = time.Now()
		return answer(http.StatusOK, `{"conversationId":"conv","token":"`+next+`","expires_in":`+expires+`}`), nil
	case r.Method == http.MethodGet && path == "/conversations/conv/activities":
		return answer(http.StatusOK, `{"activities":[],"watermark":"1"}`), nil
	case r.Method == http.MethodGet && path == "/conversations/conv":
		dl.reconnects++
		if dl.reconnects > 1 {
			return answer(http.StatusServiceUnavailable, `{"error":{"code":"ServiceError"}}`), nil
		}
		if _, ok := dl.told[token]; !ok {
			dl.told[token] = time.Now()
		}
		return answer(http.StatusOK, `{"conversationId":"conv","token":"`+token+`","expires_in":`+expires+`,"streamUrl":"`+unreachable+`"}`), nil
	}
	return answer(http.StatusNotFound, `{"error":{"code":"NotFound"}}`), nil
}

func answer(status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}
}
