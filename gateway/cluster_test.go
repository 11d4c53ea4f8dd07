package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dlsse/dlsse/cluster"
	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/internal/redistest"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse/ssetest"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// Several gateways in one process, sharing conversations as replicas do:
// through memory, and through a real Redis. What must hold is what holds
// for one: every subscriber gets every activity once, in order, whatever
// replica it is on, and Direct Line sees one socket per conversation.

// backends are what replicas share, for the cluster tests.
var backends = []struct {
	name string
	new  func(t *testing.T) func(replica string) session.Shared
}{
	{"memory", func(t *testing.T) func(string) session.Shared {
		sh := session.NewMemoryShared(64)
		return func(string) session.Shared { return sh }
	}},
	{"redis", func(t *testing.T) func(string) session.Shared {
		srv := redistest.Start(t)
		prefix := fmt.Sprintf("c%d", time.Now().UnixNano())
		return func(replica string) session.Shared {
			r, err := cluster.New(cluster.Config{URL: srv.URL(), Prefix: prefix, Keep: 64, Logger: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(r.Close)
			return r.Shared()
		}
	}},
}

// newReplicas runs n gateways over one fake, sharing conversations.
func newReplicas(t *testing.T, n int, shared func(string) session.Shared, opts harnessOptions, fake ...directlinetest.Option) []*harness {
	t.Helper()
	dl := directlinetest.NewServer(fake...)
	t.Cleanup(dl.Close)
	hs := make([]*harness, n)
	for i := range hs {
		o := opts
		replica := fmt.Sprintf("replica%d", i)
		o.session.Shared = shared(replica)
		o.session.Replica = replica
		if o.session.LeaseTTL == 0 {
			o.session.LeaseTTL = 3 * time.Second
		}
		hs[i] = newHarnessWithFake(t, dl, o)
	}
	return hs
}

func forEachBackend(t *testing.T, test func(t *testing.T, shared func(string) session.Shared)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b.new(t))
		})
	}
}

// Streams on two replicas share one upstream socket, see the greeting of
// a conversation started on a third, and get every activity once, in
// order, across an upstream drop.
func TestClusterOneSocketEveryActivityOnce(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, shared func(string) session.Shared) {
		hs := newReplicas(t, 3, shared, harnessOptions{}, directlinetest.WithBot(greetingBot{}))
		ctx := testContext(t, 20*time.Second)
		conv := hs[0].start()
		a := hs[1].open(ctx, hs[1].URL+streamPathOf(conv.StreamURL), nil)
		b := hs[2].open(ctx, hs[2].URL+streamPathOf(conv.StreamURL), nil)
		// A Direct Line client's WebSocket on the third replica: fed
		// the same way.
		c := &wsReader{t: t, c: wsDial(ctx, t, "ws://"+strings.TrimPrefix(hs[2].URL, "http://")+streamPathOf(conv.StreamURL), nil)}
		expectTexts(ctx, t, a, []string{"hello, I am the bot"})
		expectTexts(ctx, t, b, []string{"hello, I am the bot"})
		if err := hs[0].fake.WaitFor(ctx, func(st directlinetest.Stats) bool { return st.SocketsOpen == 1 }); err != nil {
			t.Fatal(err)
		}
		id := conv.ConversationID
		var want []string
		for i := range 30 {
			text := fmt.Sprintf("m%02d", i)
			want = append(want, text)
			if err := hs[0].fake.Push(id, text); err != nil {
				t.Fatal(err)
			}
			if i == 15 {
				hs[0].fake.DropSockets(id)
			}
		}
		hs[0].fake.Push(id, "end")
		want = append(want, "end")
		for _, s := range []*streamReader{{a, "a"}, {b, "b"}} {
			if got, _ := secReadUntil(ctx, t, s.s, "end"); !secEqual(got, want) {
				t.Errorf("stream %s got %q, want %q", s.name, got, want)
			}
		}
		got := []string{}
		for len(got) == 0 || got[len(got)-1] != "end" {
			got = append(got, c.next(ctx).Text)
		}
		if !secEqual(got, append([]string{"hello, I am the bot"}, want...)) {
			t.Errorf("WebSocket stream got %q, want the greeting and %q", got, want)
		}
		if st := hs[0].fake.Stats(); st.SocketsOpen != 1 {
			t.Errorf("%d sockets open for one conversation", st.SocketsOpen)
		}
		if st := hs[0].fake.Stats(); st.Collisions != 0 {
			t.Errorf("%d collisions", st.Collisions)
		}
	})
}

// A replica that stops hands its conversations over at once: the stream
// on another replica keeps receiving, with one more socket and no
// collision.
func TestClusterShutdownHandsOver(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, shared func(string) session.Shared) {
		hs := newReplicas(t, 2, shared, harnessOptions{})
		ctx := testContext(t, 20*time.Second)
		conv := hs[0].start()
		owner := hs[0].open(ctx, conv.StreamURL, nil)
		waitOnline(ctx, t, owner)
		other := hs[1].open(ctx, hs[1].URL+streamPathOf(conv.StreamURL), nil)
		waitOnline(ctx, t, other)
		id := conv.ConversationID
		hs[0].fake.Push(id, "before")
		expectTexts(ctx, t, other, []string{"before"})
		opened := hs[0].fake.Stats().SocketsOpened
		start := time.Now()
		hs[0].stop() // owner's replica shuts down
		if err := hs[0].fake.WaitFor(ctx, func(st directlinetest.Stats) bool { return st.SocketsOpened > opened }); err != nil {
			t.Fatal(err)
		}
		t.Logf("handed over in %v", time.Since(start))
		hs[0].fake.Push(id, "after")
		if got, _ := secReadUntil(ctx, t, other, "after"); !secEqual(got, []string{"after"}) {
			t.Errorf("got %q after the hand-over, want [after]", got)
		}
		if st := hs[0].fake.Stats(); st.Collisions != 0 || st.SocketsOpen != 1 {
			t.Errorf("%d collisions, %d sockets open", st.Collisions, st.SocketsOpen)
		}
	})
}

type streamReader struct {
	s    *ssetest.Stream
	name string
}

// greetingBot greets on start and echoes.
type greetingBot struct{ directlinetest.EchoBot }

func (greetingBot) OnStart(c *directlinetest.Conv) {
	_ = c.Send(map[string]any{"type": "message", "text": "hello, I am the bot"})
}

// streamPathOf is a stream URL without its gateway's scheme and host.
func streamPathOf(u string) string {
	i := len("http://")
	for j := i; j < len(u); j++ {
		if u[j] == '/' {
			return u[j:]
		}
	}
	return u
}

// /readyz says when what the replicas share is unreachable: not ready,
// unless told to ignore it.
func TestReadyzReportsTheSharedStore(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	sh := session.NewMemoryShared(0)
	sh.Healthy = healthy.Load
	for _, ignore := range []bool{false, true} {
		h := newHarness(t, harnessOptions{
			session: session.Config{Shared: sh},
			gateway: gateway.Config{ReadyIgnoresShared: ignore},
		})
		healthy.Store(true)
		if status := h.readyz(); status != http.StatusOK {
			t.Errorf("ignore=%v, healthy: /readyz %d", ignore, status)
		}
		healthy.Store(false)
		want := http.StatusServiceUnavailable
		if ignore {
			want = http.StatusOK
		}
		if status := h.readyz(); status != want {
			t.Errorf("ignore=%v, unreachable: /readyz %d, want %d", ignore, status, want)
		}
	}
}

// What a REST call on one replica teaches reaches the others: a token
// refreshed through replica A carries a stream on replica B along, and a
// participant's endOfConversation posted through A does not end the
// conversation its owner B streams.
func TestClusterRestCallsInformOtherReplicas(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, shared func(string) session.Shared) {
		const ttl = 3 * time.Second
		hs := newReplicas(t, 2, shared, harnessOptions{}, directlinetest.WithTokenTTL(ttl))
		ctx := testContext(t, 20*time.Second)
		due := time.Now().Add(ttl)
		conv := hs[1].start()
		s := hs[1].open(ctx, conv.StreamURL, nil) // the session, and the owner, on B
		waitOnline(ctx, t, s)
		if err := hs[0].fake.WaitFor(ctx, func(st directlinetest.Stats) bool { return st.TokensRefreshed >= 1 }); err != nil {
			t.Fatal(err) // B's own refresh, at half the life
		}
		status, _, body := hs[0].do(http.MethodPost, "/v3/directline/tokens/refresh", conv.Token, nil)
		if status != http.StatusOK {
			t.Fatalf("refresh through A: %d %s", status, body)
		}
		status, _, body = hs[0].do(http.MethodPost, hs[0].postPath(conv.ConversationID), conv.Token,
			map[string]any{"type": "endOfConversation", "from": map[string]any{"id": "mallory"}})
		if status != http.StatusOK {
			t.Fatalf("post through A: %d %s", status, body)
		}
		if a, _ := nextActivity(ctx, t, s); a.Type != "endOfConversation" {
			t.Fatalf("got %s, want the participant's endOfConversation", a.Type)
		}
		hs[0].fake.DropSockets(conv.ConversationID)
		readStatesUntil(ctx, t, s, session.StateOnline) // reconnected: not ended
		for time.Now().Before(due.Add(500 * time.Millisecond)) {
			hs[0].fake.Push(conv.ConversationID, "tick")
			expectTexts(ctx, t, s, []string{"tick"}) // carried past the old token's expiry
		}
	})
}

// TestClusterBotEndEndsEverywhere: the bot's endOfConversation, after a
// post through another replica, still ends the conversation for the
// subscribers of both replicas once the owner's socket closes: the owner
// waits for the other replica's news of who posted (senderNewsGrace),
// then decides the bot ended it.
func TestClusterBotEndEndsEverywhere(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, shared func(string) session.Shared) {
		bot := directlinetest.BotFunc(func(c *directlinetest.Conv, a map[string]any) {
			if a["text"] == "bye" {
				c.Send(map[string]any{"type": "endOfConversation", "from": map[string]any{"id": "bot"}})
			}
		})
		hs := newReplicas(t, 2, shared, harnessOptions{}, directlinetest.WithBot(bot))
		ctx := testContext(t, 20*time.Second)
		conv := hs[1].start()
		owner := hs[1].open(ctx, conv.StreamURL, nil) // the session, and the owner, on B
		waitOnline(ctx, t, owner)
		follower := hs[0].open(ctx, conv.StreamURL, nil)
		waitOnline(ctx, t, follower)
		hs[0].post(conv.ConversationID, conv.Token, "bye")
		for _, s := range []*ssetest.Stream{owner, follower} {
			for {
				if a, _ := nextActivity(ctx, t, s); a.Type == "endOfConversation" {
					break
				}
			}
		}
		hs[0].fake.DropSockets(conv.ConversationID)
		for _, s := range []*ssetest.Stream{owner, follower} {
			readStatesUntil(ctx, t, s, session.StateEnded)
		}
	})
}
