package main

import (
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// resourceLogEvery is how often at most a local resource error is logged.
const resourceLogEvery = 10 * time.Second

// resourceWarner logs the upstream client's local resource errors (EMFILE
// and the like): at most one warning every interval, carrying how many
// went unlogged since the previous one. Such errors come in bursts of
// thousands when a storm meets the descriptor limit; the breaker ignores
// them, so this warning is how an operator learns to raise the limit.
type resourceWarner struct {
	lg       zerolog.Logger
	every    rate.Sometimes
	unlogged atomic.Int64 // errors since the last warning, this one included
}

func newResourceWarner(lg zerolog.Logger) *resourceWarner {
	return &resourceWarner{lg: lg, every: rate.Sometimes{First: 1, Interval: resourceLogEvery}}
}

// note is upstream.Hooks.LocalResourceError.
func (w *resourceWarner) note(op string, err error) {
	w.unlogged.Add(1)
	w.every.Do(func() {
		w.lg.Warn().Str("operation", op).Err(err).Int64("unlogged_since_last", w.unlogged.Swap(0)-1).
			Msg("out of local resources (file descriptors, socket buffers or memory) for a Direct Line call; " +
				"not counted against Direct Line, retried with backoff; raise the descriptor limit (ulimit -n) or the instance count")
	})
}
