package main

import (
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
	lg zerolog.Logger
	t  *throttle
}

func newResourceWarner(lg zerolog.Logger) *resourceWarner {
	return &resourceWarner{lg: lg, t: newThrottle(resourceLogEvery)}
}

// note is upstream.Hooks.LocalResourceError.
func (w *resourceWarner) note(op string, err error) {
	w.t.do(func(unlogged int64) {
		w.lg.Warn().Str("operation", op).Err(err).Int64("unlogged_since_last", unlogged).
			Msg("out of local resources (file descriptors, socket buffers or memory) for a Direct Line call; " +
				"not counted against Direct Line, retried with backoff; raise the descriptor limit (ulimit -n) or the instance count")
	})
}
