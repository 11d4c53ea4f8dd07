// Package tasks counts the goroutines an owner must wait for before it is
// done (a session's timer callbacks, a gateway's streams).
package tasks

import (
	"context"
	"sync"
)

// Group is a WaitGroup that refuses new members once closed, so a goroutine
// that starts while its owner shuts down cannot race the final wait: it is
// either counted before Close or told not to run. The zero value is ready.
type Group struct {
	mu     sync.Mutex
	n      int
	closed bool
	empty  chan struct{} // closed once closed && n == 0; made on first need
}

// Add counts one more member and reports true, or reports false once the
// group is closed; then the caller must not run.
func (g *Group) Add() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

// Done ends a member Add counted.
func (g *Group) Done() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == 0 {
		panic("tasks: Done without Add")
	}
	g.n--
	if g.closed && g.n == 0 {
		close(g.emptyLocked())
	}
}

// Close refuses new members from now on. It is idempotent.
func (g *Group) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.closed = true
	if g.n == 0 {
		close(g.emptyLocked())
	}
}

// Wait blocks until the group is closed and its last member is done, or ctx
// ends.
func (g *Group) Wait(ctx context.Context) error {
	g.mu.Lock()
	empty := g.emptyLocked()
	g.mu.Unlock()
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Len is the number of members running.
func (g *Group) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

func (g *Group) emptyLocked() chan struct{} {
	if g.empty == nil {
		g.empty = make(chan struct{})
	}
	return g.empty
}
