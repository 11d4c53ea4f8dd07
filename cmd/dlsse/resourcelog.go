package main

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// resourceLogEvery is how often at most a local resource error is logged.
const resourceLogEvery = 10 * time.Second

// resourceWarner logs the upstream client's local resource errors (EMFILE
// and the like): at most one warning every interval, carrying how many
// went unlogged since the previous one. Such errors come in bursts of
// thousands when a storm meets the descriptor limit; the breaker ignores
// them, so this warning is how an operator learns to raise the limit.
type resourceWarner struct {
	lg    zerolog.Logger
	every time.Duration
	now   func() time.Time

	mu         sync.Mutex
	last       time.Time // of the last warning; zero: none yet
	suppressed int       // errors since then, not logged
}

func newResourceWarner(lg zerolog.Logger) *resourceWarner {
	return &resourceWarner{lg: lg, every: resourceLogEvery, now: time.Now}
}

// note is upstream.Hooks.LocalResourceError.
func (w *resourceWarner) note(op string, err error) {
	w.mu.Lock()
	now := w.now()
	if !w.last.IsZero() && now.Sub(w.last) < w.every {
		w.suppressed++
		w.mu.Unlock()
		return
	}
	w.last = now
	suppressed := w.suppressed
	w.suppressed = 0
	w.mu.Unlock()
	w.lg.Warn().Str("operation", op).Err(err).Int("unlogged_since_last", suppressed).
		Msg("out of local resources (file descriptors, socket buffers or memory) for a Direct Line call; " +
			"not counted against Direct Line, retried with backoff; raise the descriptor limit (ulimit -n) or the instance count")
}
