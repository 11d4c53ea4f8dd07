package gateway_test

import (
	"errors"
	"testing"
	"time"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/sse/ssetest"
)

// TestShutdownRetryHintsAreJittered: at shutdown every stream gets a retry
// hint of its own, written then (after its opening hint), between retry and
// retry + shutdown_jitter, and the streams' hints differ, so browsers come
// back spread out. A constant hint, even a long one, fails: eight draws
// over 5,001 ms are all equal once in 10^25.
func TestShutdownRetryHintsAreJittered(t *testing.T) {
	t.Parallel()
	const retry, jitter, n = 3 * time.Second, 5 * time.Second, 8
	h := newHarness(t, harnessOptions{gateway: gateway.Config{Retry: retry, ShutdownJitter: jitter}})
	ctx := testContext(t, 10*time.Second)
	_, streams := h.openLive(ctx, t, n)
	h.stop()

	seen := make(map[time.Duration]bool)
	for i, s := range streams {
		for {
			if _, err := s.Next(ctx); err != nil {
				if !errors.Is(err, ssetest.ErrEOF) {
					t.Fatalf("stream %d did not end at shutdown: %v", i, err)
				}
				break
			}
		}
		hints := s.Retries()
		if len(hints) != 2 || hints[0] != retry {
			t.Fatalf("stream %d got retry hints %v, want the opening %v, then one at shutdown", i, hints, retry)
		}
		if at := hints[1]; at < retry || at > retry+jitter {
			t.Errorf("stream %d: shutdown hint %v, want within [%v, %v]", i, at, retry, retry+jitter)
		}
		seen[hints[1]] = true
	}
	if len(seen) == 1 {
		t.Errorf("all %d streams got the same shutdown hint %v: not jittered", n, streams[0].Retries()[1])
	}
}
