package main

import (
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// throttle lets a warning through at most once per interval (the first at
// once) and counts the ones it held back, so the next says how many there
// were: errors that come in bursts are logged, not flooded. It is
// x/time/rate's Sometimes plus that counter.
type throttle struct {
	every    rate.Sometimes
	unlogged atomic.Int64 // calls since the last logged one, this one included
}

func newThrottle(interval time.Duration) *throttle {
	return &throttle{every: rate.Sometimes{First: 1, Interval: interval}}
}

// do counts a call and runs log when its turn came, with how many calls
// went unlogged since the last one that ran.
func (t *throttle) do(log func(unlogged int64)) {
	t.unlogged.Add(1)
	t.every.Do(func() { log(t.unlogged.Swap(0) - 1) })
}
