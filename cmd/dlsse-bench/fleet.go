package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// fleet owns the bench's clients: it starts them with a bounded number of
// connections being set up at once (a burst of thousands of SYNs would
// overflow the listen backlog and measure the kernel's retransmission
// timer instead of dlsse), and close cancels and waits for every one.
type fleet struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	slots  chan struct{}

	recs        []*recorder
	connected   atomic.Int64 // clients whose first attempt got through
	connectErrs atomic.Int64 // clients whose first attempt failed
	firstErr    atomic.Pointer[error]
}

func newFleet(parent context.Context, concurrency int) *fleet {
	ctx, cancel := context.WithCancel(parent)
	return &fleet{ctx: ctx, cancel: cancel, slots: make(chan struct{}, concurrency)}
}

// client is anything with the run method of sseClient and wsClient.
type client interface {
	run(ctx context.Context, connected func(error))
}

// add starts a client once a setup slot is free. It returns an error only
// when the fleet's context ended while waiting.
func (f *fleet) add(rec *recorder, c client) error {
	select {
	case f.slots <- struct{}{}:
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
	f.recs = append(f.recs, rec)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		var once sync.Once
		release := func(err error) {
			once.Do(func() {
				<-f.slots
				if err != nil {
					f.connectErrs.Add(1)
					f.firstErr.CompareAndSwap(nil, &err)
				} else {
					f.connected.Add(1)
				}
			})
		}
		defer release(context.Canceled) // a client that returned without saying
		c.run(f.ctx, release)
	}()
	return nil
}

// close ends every client and waits for them. Safe to call more than once.
func (f *fleet) close() {
	f.cancel()
	f.wg.Wait()
}

// count is how many clients satisfy pred now.
func (f *fleet) count(pred func(*recorder) bool) int {
	n := 0
	for _, r := range f.recs {
		if pred(r) {
			n++
		}
	}
	return n
}

// sum adds up a counter over every client.
func (f *fleet) sum(v func(*recorder) int64) int64 {
	var n int64
	for _, r := range f.recs {
		n += v(r)
	}
	return n
}

// waitAll waits until every client satisfies pred, polling its atomic
// counters every 50 ms (the clients record their own timestamps, so the
// poll's granularity never enters a measurement). On timeout it says how
// many got there.
func (f *fleet) waitAll(ctx context.Context, what string, timeout time.Duration, pred func(*recorder) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		n := f.count(pred)
		if n == len(f.recs) {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			msg := fmt.Sprintf("%s: %d of %d clients after %v", what, n, len(f.recs), timeout)
			if e := f.firstErr.Load(); e != nil {
				msg += fmt.Sprintf(" (first connect error: %v)", *e)
			}
			return errors.New(msg)
		}
	}
}

// sourceAddrs are the loopback addresses clients connect from:
// 127.0.0.1, 127.0.0.2, … Every 127/8 address is local on Linux, and each
// source has its own range of ephemeral ports towards one destination.
func sourceAddrs(n int) []net.IP {
	out := make([]net.IP, n)
	for i := range out {
		out[i] = net.IPv4(127, 0, byte(i/250), byte(i%250+1))
	}
	return out
}
