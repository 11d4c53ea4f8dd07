package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/metrics"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse/ssetest"
	"github.com/dlsse/dlsse/upstream"
)

// delayCounter is the metrics observer plus a count of the reconnects the
// process-wide reconnect limit held back.
type delayCounter struct {
	*metrics.Metrics
	delayed atomic.Int64
}

func (d *delayCounter) ReconnectDelayed(wait time.Duration) {
	d.delayed.Add(1)
	d.Metrics.ReconnectDelayed(wait)
}

// backOnline reads a subscriber's stream after a drop until it is online
// again and has the one activity said meanwhile, which must come once. It
// reports the longest retryIn a status announced.
func backOnline(ctx context.Context, s *ssetest.Stream, want string) (longestRetry time.Duration, err error) {
	online, got := false, false
	for !online || !got {
		ev, err := s.Next(ctx)
		if err != nil {
			return 0, err
		}
		switch ev.Name {
		case "status":
			var st session.Status
			_ = json.Unmarshal([]byte(ev.Data), &st)
			longestRetry = max(longestRetry, time.Duration(st.RetryIn)*time.Millisecond)
			online = st.State == session.StateOnline
		case "activity":
			var a activity
			_ = json.Unmarshal([]byte(ev.Data), &a)
			if a.Type == "typing" {
				continue
			}
			if a.Text != want || got {
				return 0, fmt.Errorf("activity %q, want %q once", a.Text, want)
			}
			got = true
		case "error":
			return 0, fmt.Errorf("error event %s", ev.Data)
		}
	}
	return longestRetry, nil
}

// TestReconnectStormIsRateLimited: Direct Line drops every socket at once
// and the process-wide reconnect limit (here 50 a second, bursts of 5)
// spreads the sessions' reconnect calls, where their own backoff (20 ms)
// alone would bunch them: however fast or slow the machine, by the time
// the k-th reconnect call reaches Direct Line, at most burst + rate × (time
// since the drop) may have — a token bucket's bound, which holds for the
// moment each call was let through and so, a fortiori, for when it was
// sent. Without the limit the 100 calls come within a fraction of a
// second and break it by far. Nothing is lost or repeated meanwhile.
func TestReconnectStormIsRateLimited(t *testing.T) {
	t.Parallel()
	const (
		n      = 100
		perSec = 50
		burst  = 5
	)
	rt := newRecordingTransport(t)
	obs := &delayCounter{Metrics: metrics.New()}
	h := newHarness(t, harnessOptions{
		upstream: upstream.Config{Transport: rt},
		session:  session.Config{ReconnectRate: perSec, ReconnectBurst: burst, Observer: obs},
	})
	ctx := testContext(t, 60*time.Second)

	convs, streams := h.openLive(ctx, t, n)
	if d := obs.delayed.Load(); d != 0 {
		t.Fatalf("%d first connects were held back: the limit is for reconnects", d)
	}

	mark := rt.count()
	dropped := time.Now() // the bucket holds at most burst from here
	if got := h.fake.DropSockets(""); got != n {
		t.Fatalf("dropped %d sockets, want %d", got, n)
	}
	for i := range convs {
		if err := h.fake.Push(convs[i].ConversationID, fmt.Sprintf("during-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	type outcome struct {
		retry time.Duration
		err   error
	}
	results := make(chan outcome, n)
	for i, s := range streams {
		go func() {
			retry, err := backOnline(ctx, s, fmt.Sprintf("during-%d", i))
			if err != nil {
				err = fmt.Errorf("subscriber %d: %w", i, err)
			}
			results <- outcome{retry, err}
		}()
	}
	announced := 0 // subscribers told of a wait of a second or more
	for range n {
		r := <-results
		if r.err != nil {
			t.Error(r.err)
		}
		if r.retry >= time.Second {
			announced++
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for i := range convs {
		if err := h.fake.Push(convs[i].ConversationID, fmt.Sprintf("post-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range streams {
		expectTexts(ctx, t, s, []string{fmt.Sprintf("post-%d", i)})
	}

	var calls []time.Duration // reconnect calls, since the drop, in order
	sessions := map[string]bool{}
	for _, c := range rt.snapshot()[mark:] {
		if c.reconnect() {
			calls = append(calls, c.at.Sub(dropped))
			sessions[c.conversationID()] = true
		}
	}
	if len(sessions) != n {
		t.Errorf("%d sessions made a reconnect call, want all %d", len(sessions), n)
	}
	if per := float64(len(calls)) / n; per > 1.1 {
		t.Errorf("%.2f reconnect calls per session, want at most 1.1", per)
	}
	for k, at := range calls {
		// +1: the limiter's float arithmetic.
		if allowed := burst + perSec*at.Seconds() + 1; float64(k+1) > allowed {
			t.Fatalf("reconnect call %d went out %v after the drop; the limit allows %.0f by then", k+1, at.Round(time.Millisecond), allowed)
		}
	}
	busiest := 0
	for i, j := 0, 0; i < len(calls); i++ {
		for calls[i]-calls[j] >= time.Second {
			j++
		}
		busiest = max(busiest, i-j+1)
	}
	t.Logf("%d sessions dropped at once, limit %d/s burst %d: %d reconnect calls over %v, busiest second %d; %d held back by the limit, %d subscribers told of a wait ≥ 1 s",
		n, perSec, burst, len(calls), calls[len(calls)-1].Round(time.Millisecond), busiest, obs.delayed.Load(), announced)
}

// TestShutdownDoesNotWaitForTheReconnectLimit: sessions queued at a
// reconnect limit of one an hour are stopped by a shutdown at once, and a
// session whose subscriber leaves does not stay queued either.
func TestShutdownDoesNotWaitForTheReconnectLimit(t *testing.T) {
	t.Parallel()
	const n = 8
	obs := &delayCounter{Metrics: metrics.New()}
	h := newHarness(t, harnessOptions{
		session: session.Config{ReconnectRate: 1.0 / 3600, ReconnectBurst: 1, Observer: obs, IdleGrace: time.Millisecond},
		// A heartbeat's write is how the gateway notices a client gone.
		gateway: gateway.Config{Heartbeat: 20 * time.Millisecond},
	})
	ctx := testContext(t, 30*time.Second)
	convs := make([]conversation, n)
	streams := make([]*ssetest.Stream, n)
	for i := range convs {
		convs[i] = h.start()
		streams[i] = h.open(ctx, convs[i].StreamURL, nil)
		waitOnline(ctx, t, streams[i])
	}
	if got := h.fake.DropSockets(""); got != n {
		t.Fatalf("dropped %d sockets, want %d", got, n)
	}
	// One session takes the burst; every other one queues for up to
	// n−1 hours.
	waitFor(t, 20*time.Second, "the sessions to queue at the reconnect limit", func() bool {
		return obs.delayed.Load() >= n-1
	})

	// A subscriber leaves: its session retires after the idle grace even
	// though it is queued.
	streams[0].Close()
	waitFor(t, 20*time.Second, "the abandoned session to close", func() bool {
		return h.mgr.Session(convs[0].ConversationID) == nil
	})

	// stop fails the test if the session goroutines do not all end
	// within its 10 s: the queued ones would wait for hours.
	stopped := make(chan struct{})
	go func() { h.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		t.Fatal("shutdown waited for the reconnect limit")
	}
}
