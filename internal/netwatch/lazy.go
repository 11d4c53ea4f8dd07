package netwatch

import "sync"

// Lazy is a Watcher made on first use (New), so that its owner starts no
// goroutine until something is watched. Close closes it, and Get fails
// after.
type Lazy struct {
	mu     sync.Mutex
	w      Watcher
	closed bool
	err    error
}

// Get returns the watcher, made at the first call.
func (l *Lazy) Get() (Watcher, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if l.w == nil && l.err == nil {
		l.w, l.err = New()
	}
	return l.w, l.err
}

// Close closes the watcher, if it was made, and waits for its goroutines.
func (l *Lazy) Close() {
	l.mu.Lock()
	w := l.w
	l.closed, l.w = true, nil
	l.mu.Unlock()
	if w != nil {
		_ = w.Close()
	}
}
