package main

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// failureLogEvery is how often at most one cause of upstream failure is
// logged again while it lasts.
const failureLogEvery = time.Minute

// maxFailureCauses bounds the causes remembered; past it they start over
// (each is logged once more), which a handful of real causes never reach.
const maxFailureCauses = 64

// failureWarner logs why Direct Line calls fail (connection refused, DNS,
// TLS, timeouts, 5xx): each cause at once the first time, then at most
// once a minute with how many calls it failed meanwhile. Without it a
// wrong upstream_url shows only as clients' 502s.
type failureWarner struct {
	lg     zerolog.Logger
	mu     sync.Mutex
	causes map[failureCause]*throttle
}

// failureCause is what makes two failures the same: where, and why. The
// operation is not part of it: a refused port refuses every operation.
type failureCause struct{ addr, cause string }

func newFailureWarner(lg zerolog.Logger) *failureWarner {
	return &failureWarner{lg: lg, causes: make(map[failureCause]*throttle)}
}

// note is upstream.Hooks.Failure; err's text names the cause and holds no
// URL or credential.
func (w *failureWarner) note(op, addr string, err error) {
	key := failureCause{addr, err.Error()}
	w.mu.Lock()
	t := w.causes[key]
	if t == nil {
		if len(w.causes) >= maxFailureCauses {
			clear(w.causes)
		}
		t = newThrottle(failureLogEvery)
		w.causes[key] = t
	}
	w.mu.Unlock()
	t.do(func(unlogged int64) {
		w.lg.Warn().Str("operation", op).Str("upstream", addr).Str("error", key.cause).Int64("unlogged_since_last", unlogged).
			Msg("Direct Line call failed (check upstream_url and the network); failures in a row open the circuit breaker")
	})
}
