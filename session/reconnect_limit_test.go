package session

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"
)

// TestReconnectLimitSpreadsAStorm: every session of a process wants to
// reconnect at the same instant. In the bubble's fake time the limit lets
// exactly its burst through at once and the rest at its rate, so no second
// holds more than rate + burst attempts, and every attempt gets its turn.
func TestReconnectLimitSpreadsAStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			sessions = 200
			perSec   = 50
			burst    = 5
		)
		l := newCallLimit(perSec, burst)
		start := time.Now()
		var delayed atomic.Int64
		var mu sync.Mutex
		var granted []time.Duration
		var wg sync.WaitGroup
		for range sessions {
			wg.Go(func() {
				if !l.wait(t.Context(), func(time.Duration) { delayed.Add(1) }) {
					t.Error("wait refused with a live context")
					return
				}
				mu.Lock()
				granted = append(granted, time.Since(start))
				mu.Unlock()
			})
		}
		wg.Wait()

		slices.Sort(granted)
		if len(granted) != sessions {
			t.Fatalf("%d of %d sessions got their turn", len(granted), sessions)
		}
		if n := delayed.Load(); n != sessions-burst {
			t.Errorf("%d sessions delayed, want all but the burst: %d", n, sessions-burst)
		}
		// The k-th turn (from 0) comes no earlier than the bucket allows:
		// the burst at once, then one every 1/rate.
		const slack = time.Millisecond // the limiter's float arithmetic
		for k, at := range granted {
			earliest := time.Duration(max(0, k+1-burst)) * time.Second / perSec
			if at < earliest-slack {
				t.Fatalf("turn %d at %v, earliest allowed %v", k, at, earliest)
			}
		}
		if last, want := granted[sessions-1], time.Duration(sessions-burst)*time.Second/perSec; last > want+slack {
			t.Errorf("last turn at %v, want %v: the limit held sessions back longer than its rate", last, want)
		}
		busiest := 0
		for i, j := 0, 0; i < len(granted); i++ {
			for granted[i]-granted[j] >= time.Second {
				j++
			}
			busiest = max(busiest, i-j+1)
		}
		if busiest > perSec+burst {
			t.Errorf("%d turns in the busiest second, want at most %d", busiest, perSec+burst)
		}
		t.Logf("%d sessions: %d at once, busiest second %d, last at %v", sessions, sessions-int(delayed.Load()), busiest, granted[sessions-1])
	})
}

// TestReconnectLimitLetsACalmDropThrough: a session that drops while the
// process is calm reconnects at once, also once a storm has passed.
func TestReconnectLimitLetsACalmDropThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newCallLimit(10, 3)
		calm := func(what string) {
			t.Helper()
			start := time.Now()
			if !l.wait(t.Context(), func(d time.Duration) { t.Errorf("%s: delayed %v", what, d) }) {
				t.Fatalf("%s: refused", what)
			}
			if d := time.Since(start); d != 0 {
				t.Errorf("%s: waited %v", what, d)
			}
		}
		calm("first drop")
		for range 10 { // a storm drains the bucket...
			l.wait(t.Context(), nil)
		}
		time.Sleep(time.Second) // fake time: the bucket refills (3 tokens take 0.3 s)
		calm("a drop after the storm")
	})
}

// TestReconnectLimitHonoursContext: a session retired, or a Manager shut
// down, while waiting for its turn stops waiting at once, and the turn it
// gave up goes to the sessions behind it.
func TestReconnectLimitHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newCallLimit(1.0/3600, 1) // one an hour
		if !l.wait(t.Context(), nil) {
			t.Fatal("the burst refused")
		}
		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now()
		result := make(chan bool, 1)
		var delay atomic.Int64
		go func() { result <- l.wait(ctx, func(d time.Duration) { delay.Store(int64(d)) }) }()
		synctest.Wait() // blocked in the limit
		if delay := time.Duration(delay.Load()); delay < 59*time.Minute {
			t.Fatalf("told of a %v wait, want about an hour", delay)
		}
		cancel()
		if <-result {
			t.Error("wait went on after its context ended")
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("a cancelled wait took %v", d)
		}
		// The cancelled turn was handed back: the next waiter is one
		// hour out, not two.
		if d := l.lim.Reserve().Delay(); d > time.Hour {
			t.Errorf("next turn in %v: the cancelled reservation kept its token", d)
		}
		if l.wait(ctx, func(d time.Duration) { t.Errorf("an ended context reserved a turn (%v)", d) }) {
			t.Error("wait with an ended context went on")
		}
	})
}

// TestReconnectLimitOff: a negative rate is no limit at all.
func TestReconnectLimitOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newCallLimit(-1, 1)
		start := time.Now()
		for range 1000 {
			if !l.wait(t.Context(), func(d time.Duration) { t.Fatalf("delayed %v without a limit", d) }) {
				t.Fatal("refused")
			}
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("1000 reconnects without a limit took %v", d)
		}
	})
}

// TestConfigReconnectLimitDefaults: zero takes the defaults, negative
// turns the limit off.
func TestConfigReconnectLimitDefaults(t *testing.T) {
	var c Config
	c.setDefaults()
	if c.ReconnectRate != DefaultReconnectRate || c.ReconnectBurst != DefaultReconnectBurst {
		t.Errorf("defaults: rate %v burst %d, want %v %d", c.ReconnectRate, c.ReconnectBurst, DefaultReconnectRate, DefaultReconnectBurst)
	}
	off := Config{ReconnectRate: -1}
	off.setDefaults()
	if off.ReconnectRate >= 0 || newCallLimit(off.ReconnectRate, off.ReconnectBurst).lim != nil {
		t.Errorf("a negative rate must mean no limit, got %v", off.ReconnectRate)
	}
}

// delayObserver records ReconnectDelayed.
type delayObserver struct {
	nopObserver
	mu     sync.Mutex
	delays []time.Duration
}

func (o *delayObserver) ReconnectDelayed(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.delays = append(o.delays, d)
}

func (o *delayObserver) seen() []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.delays)
}

// TestAwaitReconnectTurn: the session's side of the limit. A turn that
// comes at once changes nothing; one held back is counted for metrics,
// and when it is long its subscribers are told the new retryIn (same
// state and reason); a session stopped while it waits gives up at once.
func TestAwaitReconnectTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := &delayObserver{}
		m := NewManager(nil, Config{ReconnectRate: 0.5, ReconnectBurst: 1, Observer: obs}) // one every 2 s
		defer func() { _ = m.Close(t.Context()) }()
		s := newSession(m, Request{ConversationID: "conv", Credential: "cred"}, Offer{}, false)
		reconnecting := Status{State: StateReconnecting, Reason: "upstream connection lost", RetryIn: 20}
		s.setStatus(reconnecting)

		start := time.Now()
		if !s.awaitReconnectTurn(s.ctx) {
			t.Fatal("first turn refused")
		}
		if d := time.Since(start); d != 0 || len(obs.seen()) != 0 || s.Status() != reconnecting {
			t.Fatalf("a turn from a full bucket: waited %v, observed %v, status %+v", d, obs.seen(), s.Status())
		}

		if !s.awaitReconnectTurn(s.ctx) {
			t.Fatal("second turn refused")
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("second turn after %v, want 2s", d)
		}
		if got := obs.seen(); len(got) != 1 || got[0] != 2*time.Second {
			t.Errorf("observed delays %v, want [2s]", got)
		}
		want := reconnecting
		want.RetryIn = 2000
		if got := s.Status(); got != want {
			t.Errorf("status %+v, want %+v: subscribers must hear of the longer wait", got, want)
		}

		done := make(chan bool, 1)
		go func() { done <- s.awaitReconnectTurn(s.ctx) }()
		synctest.Wait() // queued for the next turn
		stopped := time.Now()
		s.cancel()
		if <-done {
			t.Error("a stopped session went on to reconnect")
		}
		if d := time.Since(stopped); d != 0 {
			t.Errorf("a stopped session waited %v more", d)
		}
	})
}

// TestReconnectLimitClockNeverGoesBack: rate.Limiter takes the time it is
// given as its clock, even an earlier one, and counts the interval again
// for the next caller; callers that read the time before queueing on its
// lock hand it such times in a storm. The limit gives it times that never
// go back, so reservations stay at the rate however the callers' clocks
// interleave.
func TestReconnectLimitClockNeverGoesBack(t *testing.T) {
	l := newCallLimit(100, 1)
	base := time.Now()
	calls := 0
	l.now = func() time.Time { // late, early, late, early...
		calls++
		if calls%2 == 0 {
			return base
		}
		return base.Add(500 * time.Millisecond)
	}
	var last *rate.Reservation
	for range 200 {
		last = l.reserve()
	}
	// 200 at 100 a second, one at a time: the last acts ~1.99 s after the
	// first. A clock going back would have handed out fresh tokens.
	if got := last.DelayFrom(base.Add(500 * time.Millisecond)); got < 1900*time.Millisecond {
		t.Fatalf("the 200th reservation waits %v, want about 1.99 s", got)
	}
}
