package session

import (
	"runtime"
	"slices"
	"sync"
)

// Fan-out: after an append, every subscriber's stream writes what the log
// now has for it. A few subscribers (a chat widget's one) are written on
// the publisher's goroutine; many by a fan-out pass on goroutines of the
// session's, which the publisher need not wait for: while a pass writes,
// the log grows, and the next pass gives each subscriber all of that in
// one batch. Streams are written with non-blocking writes (sse.Waker's
// WriteNow); a stream whose client cannot take a write at once goes on on
// a goroutine of its own, so neither the publisher nor a pass ever waits
// for a client. A publisher far ahead of the running pass (a quarter of
// the replay log) waits for the pass to end, which is dlsse's own work:
// else a burst longer than the log would leave every subscriber behind
// it, to catch up from Direct Line.

// inlineSubscribers is how many subscribers the publisher writes itself.
const inlineSubscribers = 4

// minPerWorker is the fewest subscribers a pass gives a goroutine of its
// own: a write costs a few microseconds, a goroutine about one.
const minPerWorker = 64

// notify has every subscriber's stream write what is new.
func (s *Session) notify() {
	var few [inlineSubscribers]*Subscriber
	s.mu.Lock()
	if len(s.subs) > inlineSubscribers {
		s.mu.Unlock()
		s.startPass()
		s.keepUpWithPass()
		return
	}
	subs := few[:copy(few[:], s.subs)]
	s.mu.Unlock()
	for _, sub := range subs {
		sub.writeNow()
	}
}

// startPass starts a fan-out pass, or tells the running one to pass again.
func (s *Session) startPass() {
	if !s.fan.Take() {
		return // the running pass passes again: the log grew
	}
	if !s.tasks.Add() {
		// Closing: the streams' own goroutines write.
		s.fan.Drop()
		s.wakeAll()
		return
	}
	go s.passFn()
}

// keepUpWithPass waits for the running pass to end when the log has
// grown more than a quarter of its size since the pass began.
func (s *Session) keepUpWithPass() {
	if s.log.Head()-s.passHead.Load() <= uint64(s.m.cfg.ReplayBuffer/4) {
		return
	}
	s.passMu.Lock()
	defer s.passMu.Unlock()
	for gen := s.passGen; gen == s.passGen && !s.fan.Idle(); {
		s.passEnd.Wait()
	}
}

// pass writes every subscriber, again while notify says the log grew.
func (s *Session) pass() {
	defer s.tasks.Done()
	for {
		s.mu.Lock()
		s.passSubs = append(s.passSubs[:0], s.subs...)
		s.mu.Unlock()
		s.passHead.Store(s.log.Head())
		writeAll(s.passSubs)
		clear(s.passSubs) // a departed subscriber is not kept until the next pass
		done := s.fan.Release()
		s.passMu.Lock()
		s.passGen++
		s.passEnd.Broadcast()
		s.passMu.Unlock()
		if done {
			return
		}
	}
}

// writeAll writes subs, spread over as many goroutines as there are CPUs
// (minPerWorker each at least), and returns when every write was made or
// handed to its stream's goroutine.
func writeAll(subs []*Subscriber) {
	workers := min(runtime.GOMAXPROCS(0), len(subs)/minPerWorker)
	if workers <= 1 {
		for _, sub := range subs {
			sub.writeNow()
		}
		return
	}
	per := (len(subs) + workers - 1) / workers
	var wg sync.WaitGroup
	for part := range slices.Chunk(subs[per:], per) {
		wg.Go(func() {
			for _, sub := range part {
				sub.writeNow()
			}
		})
	}
	for _, sub := range subs[:per] {
		sub.writeNow()
	}
	wg.Wait()
}

// wakeAll has every subscriber's stream write on its own goroutine.
func (s *Session) wakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		sub.wake()
	}
}
