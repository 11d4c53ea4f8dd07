package gateway_test

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestIdleSessionsHoldNoGoroutine: a session whose Direct Line socket and
// SSE stream are both quiet holds no goroutine of dlsse's: the upstream
// socket is watched by the epoll set, the stream by the heartbeat wheel.
// (A session used to keep one parked in its upstream read.) The test's
// own clients and the fake hold goroutines per connection; those are not
// counted.
func TestIdleSessionsHoldNoGoroutine(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := testContext(t, 30*time.Second)
	h.openLive(ctx, t, 1) // the watchers and wheels exist from here on
	var base int
	waitFor(t, 10*time.Second, "the first session to go quiet", func() bool {
		base = dlsseGoroutines()
		return base <= 16
	})
	const sessions = 40
	h.openLive(ctx, t, sessions)
	var n int
	waitFor(t, 10*time.Second, "the sessions to go quiet", func() bool {
		n = dlsseGoroutines()
		return n <= base+sessions/10
	})
	t.Logf("dlsse goroutines: %d with 1 quiet session, %d with %d", base, n, sessions+1)
}

// dlsseGoroutines counts the goroutines running dlsse's own code (the
// gateway, session, upstream, sse and internal packages), not the tests',
// nor the fake's.
func dlsseGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		switch {
		case strings.Contains(g, "_test.go"), strings.Contains(g, "directlinetest"), strings.Contains(g, "ssetest"):
		case strings.Contains(g, "/session/"), strings.Contains(g, "/upstream/"), strings.Contains(g, "/gateway/"),
			strings.Contains(g, "/sse/"), strings.Contains(g, "/internal/"):
			n++
		}
	}
	return n
}
