package replicas_test

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"
)

// expected is what every subscriber of a conversation must have received,
// exactly and in this order.
func expected(rounds, perRound int) []string {
	want := []string{greeting}
	for r := range rounds {
		for k := range perRound {
			want = append(want, fmt.Sprintf("r%d-%02d", r, k))
		}
	}
	return want
}

// checkExactlyOnce waits until every subscriber has len(want) activities,
// then compares.
func checkExactlyOnce(t *testing.T, e *env, subs []*subscriber, want []string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && !slices.ContainsFunc(subs, func(s *subscriber) bool { return !s.has(len(want)) }) == false {
		time.Sleep(50 * time.Millisecond) // polls what the subscribers' goroutines collect
	}
	for _, s := range subs {
		if got, _ := s.got(); !slices.Equal(got, want) {
			s.mu.Lock()
			opens, statuses, u := s.opens, s.statuses, s.url
			s.mu.Unlock()
			t.Errorf("%s: got %d activities, want %d; missing %q, extra or out of order: %q (%d opens, statuses %v, at %s)",
				s.name, len(got), len(want), missing(want, got), disorder(want, got), opens, statuses, u)
		}
	}
}

// TestReplicasBehaveLikeOne: three replicas behind plain round-robin.
// Twenty conversations are started through the proxy (the bot greets),
// each read by two subscribers, one through the proxy and one on a
// replica of its own, while the bot sends bursts. One subscriber moves to
// another replica; the owner of a conversation is killed (SIGKILL) in the
// middle of a burst and later restarted. Every subscriber gets every
// activity once, in order, greeting included; Direct Line sees at most one
// collision per change of owner; the conversations of the killed replica
// are served again within the lease and a few seconds.
func TestReplicasBehaveLikeOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	const convs, rounds, perRound = 20, 5, 10
	ids := make([]string, convs)
	var subs []*subscriber
	for i := range convs {
		c := e.start()
		ids[i] = c.ID
		viaProxy := c.StreamURL
		direct := onReplica(t, c.StreamURL, e.replicas[i%len(e.replicas)].Addr)
		subs = append(subs,
			newSubscriber(t, fmt.Sprintf("conv%d/proxy", i), viaProxy, viaProxy),
			newSubscriber(t, fmt.Sprintf("conv%d/replica%d", i, i%len(e.replicas)), direct, viaProxy))
	}
	e.waitFor("every conversation owned", 20*time.Second, func() bool {
		for _, id := range ids {
			if e.owner(id) < 0 {
				return false
			}
		}
		return true
	})
	victim := e.owner(ids[0])
	var victims []string // conversations whose owner is killed
	for _, id := range ids {
		if e.owner(id) == victim {
			victims = append(victims, id)
		}
	}
	t.Logf("replica %d owns %d of %d conversations and will be killed", victim, len(victims), convs)

	var killedAt time.Time
	sentAt := map[string]time.Time{}
	for r := range rounds {
		for i, id := range ids {
			texts := make([]string, perRound)
			for k := range texts {
				texts[k] = fmt.Sprintf("r%d-%02d", r, k)
			}
			if r == 2 && i == convs/2 { // mid-burst
				if err := e.replicas[victim].Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				<-e.replicas[victim].Exited
				killedAt = time.Now()
			}
			e.say(id, texts[:perRound/2]...)
			e.say(id, texts[perRound/2:]...)
			sentAt[fmt.Sprintf("%s/r%d", id, r)] = time.Now()
		}
		if r == 1 {
			// A subscriber comes back on another replica.
			s := subs[3]
			s.moveTo(onReplica(t, s.fallback, e.replicas[2].Addr))
		}
		if r == 3 {
			e.startReplica(victim)
		}
	}
	checkExactlyOnce(t, e, subs, expected(rounds, perRound))

	// Served again within the lease and a few seconds: the first activity
	// sent after the kill reached the victims' subscribers in time.
	var worst time.Duration
	for i, id := range ids {
		if !slices.Contains(victims, id) {
			continue
		}
		first := "r2-00"
		if i < convs/2 {
			first = "r3-00"
		}
		for _, s := range subs[2*i : 2*i+2] {
			if gap := s.arrivalOf(first).Sub(killedAt); gap > worst {
				worst = gap
			}
		}
	}
	t.Logf("after the SIGKILL the victims' conversations delivered again within %v (lease %v)", worst.Round(time.Millisecond), leaseTTL)
	if worst > leaseTTL+5*time.Second {
		t.Errorf("delivery gap %v after the SIGKILL, want at most the lease (%v) + 5 s", worst, leaseTTL)
	}
	st := e.stats()
	t.Logf("Direct Line: %d sockets opened, %d collisions, %d reconnect calls", st.SocketsOpened, st.Collisions, st.ReconnectCalls)
	if st.Collisions > int64(len(victims)) {
		t.Errorf("%d collisions for %d changes of owner", st.Collisions, len(victims))
	}
	if st.SocketsOpen > int64(convs) {
		t.Errorf("%d sockets open for %d conversations", st.SocketsOpen, convs)
	}
}

// missing lists what want has and got lacks.
func missing(want, got []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			out = append(out, w)
		}
	}
	return out
}

// disorder lists what got has twice, or out of want's order.
func disorder(want, got []string) []string {
	var out []string
	seen := map[string]bool{}
	last := -1
	for _, g := range got {
		i := slices.Index(want, g)
		if seen[g] || i < last {
			out = append(out, g)
		}
		seen[g] = true
		last = max(last, i)
	}
	return out
}
