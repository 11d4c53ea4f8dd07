package gateway

import (
	"context"
	"sync"
)

// streamSet counts the running stream goroutines so Shutdown can wait for
// them. Unlike a WaitGroup it refuses new members once closed, so a stream
// that starts during shutdown cannot race the wait.
type streamSet struct {
	mu     sync.Mutex
	n      int
	closed bool
	empty  chan struct{} // closed when closed && n == 0
}

func (s *streamSet) init() { s.empty = make(chan struct{}) }

// add registers a stream; false once the set is closed.
func (s *streamSet) add() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.n++
	return true
}

func (s *streamSet) done() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n--
	if s.closed && s.n == 0 {
		close(s.empty)
	}
}

func (s *streamSet) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.n == 0 {
		close(s.empty)
	}
}

func (s *streamSet) wait(ctx context.Context) error {
	select {
	case <-s.empty:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *streamSet) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
