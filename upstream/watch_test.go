package upstream_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dlsse/dlsse/internal/netwatch"
	"github.com/dlsse/dlsse/upstream"
)

// watchedReaders maps a stream to the reader next uses for it instead of
// Next: see readWatched.
var watchedReaders sync.Map

// eachReadMode runs f twice: with streams read by a goroutine waiting in
// Next (tests, tools), and read as the session reads them, when the
// watcher calls (read marks each stream f opens).
func eachReadMode(t *testing.T, f func(t *testing.T, read func(*upstream.Stream))) {
	t.Run("waiting", func(t *testing.T) { f(t, func(*upstream.Stream) {}) })
	t.Run("watched", func(t *testing.T) {
		w, err := netwatch.New()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Close() })
		f(t, func(s *upstream.Stream) { readWatched(t, w, s) })
	})
}

// readWatched has next read s as the session does: Watch, then
// TryMessage until it has nothing, each time the watcher calls.
func readWatched(t *testing.T, w netwatch.Watcher, s *upstream.Stream) {
	t.Helper()
	readable := make(chan struct{}, 1)
	if err := s.Watch(w, func() {
		select {
		case readable <- struct{}{}:
		default:
		}
	}); err != nil {
		t.Fatalf("Watch: %v", err)
	}
	watchedReaders.Store(s, func() (upstream.ActivitySet, error) {
		for {
			m, ok, err := s.TryMessage()
			if err != nil {
				return upstream.ActivitySet{}, err
			}
			if !ok {
				select {
				case <-readable:
					continue
				case <-time.After(testTimeout):
					return upstream.ActivitySet{}, errors.New("the watcher never called")
				}
			}
			set, known, err := m.Decode()
			m.Release()
			if err != nil || known {
				return set, err
			}
		}
	})
	t.Cleanup(func() { watchedReaders.Delete(s) })
}

// readerOf is what reads s's next set: Next, or its readWatched reader.
func readerOf(s *upstream.Stream) func() (upstream.ActivitySet, error) {
	if f, ok := watchedReaders.Load(s); ok {
		return f.(func() (upstream.ActivitySet, error))
	}
	return s.Next
}
