package replicas_test

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// watched starts n conversations, each read by a subscriber on every
// replica, and waits until each has an owner and its subscribers the
// greeting.
func watched(t *testing.T, e *env, n int) (ids []string, subs []*subscriber, convs []conversation) {
	t.Helper()
	for i := range n {
		c := e.start()
		convs = append(convs, c)
		ids = append(ids, c.ID)
		for j, r := range e.replicas {
			subs = append(subs, newSubscriber(t, fmt.Sprintf("conv%d/replica%d", i, j), onReplica(t, c.StreamURL, r.Addr), c.StreamURL))
		}
	}
	var lacking []string
	began := time.Now()
	e.waitFor("owners and greetings", 20*time.Second, func() bool {
		lacking = lacking[:0]
		for _, id := range ids {
			if e.owner(id) < 0 {
				lacking = append(lacking, "an owner for "+id)
			}
		}
		for _, s := range subs {
			if !s.has(1) {
				s.mu.Lock()
				lacking = append(lacking, fmt.Sprintf("the greeting for %s (%d opens, statuses %v, at %s)", s.name, s.opens, s.statuses, s.url))
				s.mu.Unlock()
			}
		}
		if len(lacking) > 0 {
			t.Logf("still lacking %q", lacking)
			// DUMP_ON_STALL=1 (with KEEP_TEST_LOGS=dir): a stall's
			// goroutines, in the replicas' logs.
			if os.Getenv("DUMP_ON_STALL") != "" && time.Since(began) > 15*time.Second {
				for _, r := range e.replicas {
					_ = r.Signal(syscall.SIGQUIT)
				}
			}
		}
		return len(lacking) == 0
	})
	return ids, subs, convs
}

// sayRound makes the bot say round r's perRound messages everywhere.
func sayRound(e *env, ids []string, r, perRound int) {
	for _, id := range ids {
		texts := make([]string, perRound)
		for k := range texts {
			texts[k] = fmt.Sprintf("r%d-%02d", r, k)
		}
		e.say(id, texts...)
	}
}

// statusOn reports whether every subscriber's last status is state.
func lastStatusIs(subs []*subscriber, state string) bool {
	for _, s := range subs {
		s.mu.Lock()
		last := ""
		if n := len(s.statuses); n > 0 {
			last = s.statuses[n-1]
		}
		s.mu.Unlock()
		if last != state {
			return false
		}
	}
	return true
}

// TestRedisOutage: Redis goes away. The streams stay open and say
// "unavailable"; REST calls keep working; /readyz says not ready. Redis
// comes back empty (a restart without persistence): what the bot said
// meanwhile arrives, once, in order, on every replica.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	ids, subs, convs := watched(t, e, 3)
	sayRound(e, ids, 0, 5)
	e.redis.Stop()
	e.waitFor("every stream to say unavailable", 3*leaseTTL, func() bool { return lastStatusIs(subs, "unavailable") })
	for _, r := range e.replicas {
		res, err := e.http.Get(r.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s /readyz: %d while Redis is down, want 503", r.Addr, res.StatusCode)
		}
	}
	// REST goes on: a user posts (straight to a replica: HAProxy has taken
	// them all out, as /readyz asks).
	req, _ := http.NewRequest(http.MethodPost, e.replicas[1].URL+"/v3/directline/conversations/"+ids[0]+"/activities",
		strings.NewReader(`{"type":"message","from":{"id":"u1"},"text":"during the outage"}`))
	req.Header.Set("Authorization", "Bearer "+convs[0].Token)
	req.Header.Set("Content-Type", "application/json")
	res, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("post while Redis is down: %d", res.StatusCode)
	}
	sayRound(e, ids, 1, 5)
	e.redis.Restart()
	sayRound(e, ids, 2, 5)
	want := expected(3, 5)
	// The user's message and its echo, between rounds 0 and 1, on
	// conversation 0.
	want0 := slices.Concat(want[:6], []string{"during the outage", "echo: during the outage"}, want[6:])
	checkExactlyOnce(t, e, subs[len(e.replicas):], want)
	checkExactlyOnce(t, e, subs[:len(e.replicas)], want0)
}

// TestRedisFlushAll: Redis forgets everything (FLUSHALL) in the middle of
// a burst. Nothing is lost or repeated.
func TestRedisFlushAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	ids, subs, _ := watched(t, e, 3)
	sayRound(e, ids, 0, 10)
	if _, err := e.redis.Do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	sayRound(e, ids, 1, 10)
	sayRound(e, ids, 2, 10)
	checkExactlyOnce(t, e, subs, expected(3, 10))
}

// TestOwnerPausedPastItsLease: the owner of a conversation is stopped
// (SIGSTOP) for longer than its lease, while the bot talks; another
// replica takes over. When it resumes (SIGCONT) it has fenced itself: at
// most one collision, nothing repeated, nothing lost, on every replica.
func TestOwnerPausedPastItsLease(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	ids, subs, _ := watched(t, e, 1)
	owner := e.owner(ids[0])
	sayRound(e, ids, 0, 5)
	if err := e.replicas[owner].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	sayRound(e, ids, 1, 5)
	e.waitFor("another replica to take over", 4*leaseTTL, func() bool {
		o := e.owner(ids[0])
		return o >= 0 && o != owner
	})
	// Served again elsewhere before the owner comes back.
	var others []*subscriber
	for j, s := range subs {
		if j != owner {
			others = append(others, s)
		}
	}
	checkExactlyOnce(t, e, others, expected(2, 5))
	t.Logf("taken over and delivered %v after the owner stopped (lease %v)", time.Since(stopped).Round(time.Millisecond), leaseTTL)
	if err := e.replicas[owner].Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	sayRound(e, ids, 2, 5)
	checkExactlyOnce(t, e, subs, expected(3, 5))
	if st := e.stats(); st.Collisions > 1 {
		t.Errorf("%d collisions, want at most one", st.Collisions)
	}
}
