package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse/ssetest"
	"github.com/dlsse/dlsse/upstream"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// TestChaos runs conversations × subscribers against the Direct Line fake
// while it drops and stalls sockets, fails REST calls in bursts (502, then
// 429 with Retry-After) and dial attempts, lets tokens expire (short TTL)
// and expires them all at once; subscribers are kicked off and resume; and
// the gateway itself is shut down mid-stream and replaced by a fresh one
// that the subscribers resume against with Last-Event-ID. Every subscriber
// must receive every activity of its conversation exactly once, in order.
//
// The chaos is driven by a seeded generator (DLSSE_CHAOS_SEED overrides the
// seed) so a failure can be replayed; timing still varies from run to run,
// which is the point of the exercise.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test skipped in -short mode")
	}
	seed := uint64(20261122)
	if v := os.Getenv("DLSSE_CHAOS_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	const (
		conversations = 6
		subscribers   = 3
		rounds        = 160
		perRound      = 2 // activities per conversation per round
	)

	fake := directlinetest.NewServer(
		directlinetest.WithTokenTTL(3*time.Second), // tokens expire during the run
		directlinetest.WithKeepalive(50*time.Millisecond),
	)
	t.Cleanup(fake.Close)

	var breakerOpened, breakerClosed atomic.Int64
	opts := harnessOptions{
		upstream: upstream.Config{
			Keepalive: 100 * time.Millisecond, // a stalled socket is noticed after 300 ms
			Breaker: gobreaker.Settings{
				Timeout:     400 * time.Millisecond,
				ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
			},
			Hooks: upstream.Hooks{BreakerChange: func(_, to gobreaker.State) {
				switch to {
				case gobreaker.StateOpen:
					breakerOpened.Add(1)
				case gobreaker.StateClosed:
					breakerClosed.Add(1)
				}
			}},
		},
		session: session.Config{
			ReplayBuffer: 24, // small: resumes and slow readers go to Direct Line
			BackoffBase:  20 * time.Millisecond,
			BackoffMax:   300 * time.Millisecond,
			IdleGrace:    time.Second,
		},
		gateway: gateway.Config{Retry: 50 * time.Millisecond, ShutdownJitter: 100 * time.Millisecond, Heartbeat: 200 * time.Millisecond},
	}
	first := newHarnessWithFake(t, fake, opts)
	var current atomic.Pointer[harness]
	current.Store(first)

	ctx := testContext(t, 90*time.Second)
	convs := make([]*chaosConversation, conversations)
	for i := range convs {
		c := first.start()
		convs[i] = &chaosConversation{id: c.ConversationID, secret: fake.Secret()}
		convs[i].token.Store(&c.Token)
	}

	// Clients: subscribers and one token refresher per conversation.
	var wg sync.WaitGroup
	clientCtx, stopClients := context.WithCancel(ctx)
	defer stopClients()
	var subs []*chaosSubscriber
	for _, c := range convs {
		wg.Add(1)
		go func() { defer wg.Done(); c.refreshTokens(clientCtx, &current) }()
		for range subscribers {
			s := &chaosSubscriber{conv: c, kick: make(chan struct{}, 1), finished: make(chan struct{})}
			subs = append(subs, s)
			wg.Add(1)
			go func() { defer wg.Done(); s.run(clientCtx, &current) }()
		}
	}
	for _, s := range subs {
		if err := s.waitOnline(ctx); err != nil {
			t.Fatalf("subscriber never came online: %v", err)
		}
	}

	// The bot talks; chaos strikes between rounds.
	var chaos chaosLog
	tick := time.NewTicker(20 * time.Millisecond) // pacing, so faults have time to act
	defer tick.Stop()
	var second *harness
	for round := range rounds {
		<-tick.C
		for _, c := range convs {
			texts := make([]string, perRound)
			for k := range texts {
				texts[k] = c.next()
			}
			var err error
			if rng.IntN(3) == 0 {
				err = fake.PushSet(c.id, texts...) // a multi-activity set
			} else {
				err = fake.Push(c.id, texts...)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if round == rounds/2 {
			// The gateway goes away mid-stream; a fresh one takes over.
			first.stop()
			second = newHarnessWithFake(t, fake, opts)
			current.Store(second)
			chaos.add("gateway restart")
			continue
		}
		if rng.IntN(4) != 0 {
			continue
		}
		c := convs[rng.IntN(len(convs))]
		switch rng.IntN(8) {
		case 0, 1:
			fake.DropSockets(c.id)
			chaos.add("drop")
		case 2:
			fake.StallSockets(c.id)
			chaos.add("stall")
		case 3:
			fake.FailNext(6, http.StatusBadGateway, "BotError", "")
			chaos.add("502 burst")
		case 4:
			fake.FailNext(2, http.StatusTooManyRequests, "Throttled", "1")
			chaos.add("429 burst")
		case 5:
			fake.FailNextDials(3, http.StatusServiceUnavailable)
			fake.DropSockets(c.id)
			chaos.add("dial failures")
		case 6:
			subs[rng.IntN(len(subs))].kickOff()
			chaos.add("client kicked")
		case 7:
			if chaos.count("expire all tokens") == 0 && round > rounds/4 {
				fake.ExpireTokens()
				fake.DropSockets("")
				chaos.add("expire all tokens")
			} else {
				fake.DropSockets("")
				chaos.add("drop all")
			}
		}
	}
	// Make sure the breaker is exercised even by an unlucky seed.
	if breakerOpened.Load() == 0 {
		fake.FailNext(10, http.StatusBadGateway, "BotError", "")
		fake.DropSockets("")
		chaos.add("502 burst (forced)")
	}
	for _, c := range convs {
		if err := fake.Push(c.id, c.end()); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range subs {
		select {
		case <-s.finished:
		case <-ctx.Done():
			t.Fatalf("subscriber of %s did not receive everything: got %d of %d", s.conv.id, len(s.got), s.conv.sent())
		}
	}
	// The serving gateway's breaker closes again: the clients' token
	// refreshes keep probing. (A breaker of the stopped gateway may have
	// been open when it went.)
	waitFor(t, 10*time.Second, "the breaker to close", func() bool {
		return current.Load().up.BreakerState() == gobreaker.StateClosed && breakerClosed.Load() > 0
	})
	stopClients()
	wg.Wait()

	// Verdict.
	var sent, delivered, duplicated, missing, resumes int
	for _, c := range convs {
		sent += c.sent() * subscribers
	}
	for _, s := range subs {
		d, m := s.check()
		if d+m > 0 {
			t.Logf("subscriber of %s: %d duplicated, %d missing: %s\n%s", s.conv.id, d, m, s.gaps(), strings.Join(s.trace, " "))
		}
		delivered += len(s.got)
		duplicated += d
		missing += m
		resumes += s.resumes
	}
	st := fake.Stats()
	t.Logf("seed %d; chaos: %s", seed, chaos.String())
	t.Logf("activities sent %d (×%d subscribers), delivered %d, duplicated %d, missing %d", sent/subscribers, subscribers, delivered, duplicated, missing)
	t.Logf("subscriber resumes %d; upstream sockets opened %d, reconnect calls %d, collisions %d, token refreshes (clients' and sessions') %d; breaker opened %d, closed %d",
		resumes, st.SocketsOpened, st.ReconnectCalls, st.Collisions, st.TokensRefreshed, breakerOpened.Load(), breakerClosed.Load())
	if duplicated != 0 || missing != 0 || delivered != sent {
		t.Errorf("exactly-once violated: delivered %d of %d, %d duplicated, %d missing", delivered, sent, duplicated, missing)
	}
	if breakerOpened.Load() == 0 || breakerClosed.Load() == 0 {
		t.Errorf("the breaker did not both open (%d) and close (%d)", breakerOpened.Load(), breakerClosed.Load())
	}
	_ = second
}

// chaosConversation is one conversation as the test's clients see it.
type chaosConversation struct {
	id     string
	secret string
	token  atomic.Pointer[string]

	mu   sync.Mutex
	seq  int
	done bool
}

func (c *chaosConversation) next() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return fmt.Sprintf("%s#%05d", c.id, c.seq)
}

func (c *chaosConversation) end() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.done = true
	return fmt.Sprintf("%s#%05d#end", c.id, c.seq)
}

func (c *chaosConversation) sent() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

// refreshTokens keeps the conversation's token fresh as a client would
// (POST tokens/refresh through the gateway), and when it is too late gets a
// new one the way a token server does (reconnect with the secret).
func (c *chaosConversation) refreshTokens(ctx context.Context, current *atomic.Pointer[harness]) {
	t := time.NewTicker(700 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.renew(ctx, current, false)
	}
}

// renew gets a new token: by refresh, or (fromSecret, or when refresh is
// refused) from the secret. Failures are left for the next tick.
func (c *chaosConversation) renew(ctx context.Context, current *atomic.Pointer[harness], fromSecret bool) {
	h := current.Load()
	call := func(method, path, credential string) (string, int) {
		req, _ := http.NewRequestWithContext(ctx, method, h.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+credential)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", 0
		}
		defer resp.Body.Close()
		var body struct{ Token string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return body.Token, resp.StatusCode
	}
	if !fromSecret {
		tok, status := call(http.MethodPost, "/v3/directline/tokens/refresh", *c.token.Load())
		if status == http.StatusOK && tok != "" {
			c.token.Store(&tok)
			return
		}
		if status != http.StatusForbidden && status != http.StatusUnauthorized {
			return // passing trouble: next tick
		}
	}
	if tok, status := call(http.MethodGet, "/v3/directline/conversations/"+c.id, c.secret); status == http.StatusOK && tok != "" {
		c.token.Store(&tok)
	}
}

// chaosSubscriber is one EventSource-like client: it reconnects after the
// retry hint with Last-Event-ID, re-authenticates after TokenExpired, and
// records what it receives.
type chaosSubscriber struct {
	conv     *chaosConversation
	kick     chan struct{}
	finished chan struct{}
	online   atomic.Bool

	got     []string // only the run goroutine touches these until it ends
	resumes int
	trace   []string // how each stream began and ended, for a failure message
}

func (s *chaosSubscriber) kickOff() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *chaosSubscriber) waitOnline(ctx context.Context) error {
	for !s.online.Load() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

func (s *chaosSubscriber) run(ctx context.Context, current *atomic.Pointer[harness]) {
	last := ""
	retry := 50 * time.Millisecond
	for ctx.Err() == nil {
		h := current.Load()
		header := http.Header{}
		if last != "" {
			header.Set("Last-Event-ID", last)
		}
		stream, err := ssetest.Open(ctx, h.streamURL(s.conv.id, *s.conv.token.Load()), header)
		if err != nil {
			var se *ssetest.StatusError
			if errors.As(err, &se) && (se.Status == http.StatusForbidden || se.Status == http.StatusUnauthorized) {
				s.conv.renew(ctx, current, true)
			}
			if !pause(ctx, retry) {
				return
			}
			continue
		}
		if last != "" {
			s.resumes++
		}
		s.trace = append(s.trace, fmt.Sprintf("open(%q)@%d", last, len(s.got)))
		ended := s.consume(ctx, stream, &last, current)
		s.trace = append(s.trace, fmt.Sprintf("end@%d", len(s.got)))
		if r := stream.Retry(); r > 0 {
			retry = r
		}
		stream.Close()
		if ended || !pause(ctx, retry) {
			return
		}
	}
}

// consume reads one stream until it ends; it reports true once the
// conversation's end marker arrived.
func (s *chaosSubscriber) consume(ctx context.Context, stream *ssetest.Stream, last *string, current *atomic.Pointer[harness]) bool {
	readerCtx, stopReader := context.WithCancel(ctx)
	defer stopReader() // before the deferred wait below: runs last-in first-out
	events := make(chan ssetest.Event)
	errc := make(chan error, 1)
	go func() {
		ctx := readerCtx
		for {
			ev, err := stream.Next(ctx)
			if err != nil {
				errc <- err
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	defer func() { stopReader(); stream.Close(); <-errc }()
	for {
		select {
		case <-s.kick:
			return false
		case <-errc:
			errc <- nil // for the deferred receive
			return false
		case ev := <-events:
			// What a browser would send as Last-Event-ID next time:
			// the last id any event carried (status events carry
			// one too); an event without one keeps it.
			if ev.HasID {
				*last = ev.ID
			}
			switch ev.Name {
			case "status":
				if strings.Contains(ev.Data, `"online"`) {
					s.online.Store(true)
				}
			case "error":
				if strings.Contains(ev.Data, "TokenExpired") {
					s.conv.renew(ctx, current, true)
				}
			case "activity":
				var a struct{ Type, Text string }
				_ = json.Unmarshal([]byte(ev.Data), &a)
				if a.Type != "message" || !strings.HasPrefix(a.Text, s.conv.id+"#") {
					continue
				}
				s.got = append(s.got, a.Text)
				if strings.HasSuffix(a.Text, "#end") {
					close(s.finished)
					return true
				}
			}
		}
	}
}

// check compares what arrived with the conversation's sequence.
func (s *chaosSubscriber) check() (duplicated, missing int) {
	seen := make(map[string]bool, len(s.got))
	next := 1
	for _, text := range s.got {
		if seen[text] {
			duplicated++
			continue
		}
		seen[text] = true
		n, _ := strconv.Atoi(strings.Split(text, "#")[1])
		if n > next {
			missing += n - next
		}
		next = n + 1
	}
	missing += s.conv.sent() + 1 - next
	return duplicated, missing
}

// gaps describes where the sequence breaks, for the failure message.
func (s *chaosSubscriber) gaps() string {
	var out []string
	next := 1
	for _, text := range s.got {
		n, _ := strconv.Atoi(strings.Split(text, "#")[1])
		if n != next {
			out = append(out, fmt.Sprintf("expected %d got %d", next, n))
		}
		if n >= next {
			next = n + 1
		}
	}
	return strings.Join(out, "; ")
}

// pause waits d like a browser's reconnect delay, or until ctx ends.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// chaosLog counts what the chaos did.
type chaosLog struct {
	counts map[string]int
	order  []string
}

func (l *chaosLog) add(what string) {
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	if l.counts[what] == 0 {
		l.order = append(l.order, what)
	}
	l.counts[what]++
}

func (l *chaosLog) count(what string) int { return l.counts[what] }

func (l *chaosLog) String() string {
	parts := make([]string, 0, len(l.order))
	for _, w := range l.order {
		parts = append(parts, fmt.Sprintf("%s ×%d", w, l.counts[w]))
	}
	return strings.Join(parts, ", ")
}
