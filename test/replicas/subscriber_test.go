package replicas_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dlsse/dlsse/sse/ssetest"
)

// subscriber reads a conversation's stream as a browser does: when the
// stream ends or breaks it comes back with Last-Event-ID, to the same
// address, or through the proxy when that address does not answer. It
// keeps every activity's text (typing left out) and when it arrived.
type subscriber struct {
	name     string
	fallback string // the proxy's stream URL

	mu       sync.Mutex
	url      string
	texts    []string
	at       []time.Time
	statuses []string
	opens    int

	cancel context.CancelFunc
	done   chan struct{}
}

func newSubscriber(t *testing.T, name, streamURL, fallback string) *subscriber {
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscriber{name: name, url: streamURL, fallback: fallback, cancel: cancel, done: make(chan struct{})}
	go s.run(ctx)
	t.Cleanup(s.stop)
	return s
}

func (s *subscriber) stop() {
	s.cancel()
	<-s.done
}

// moveTo makes the subscriber come back through streamURL, as a browser
// that the next connection takes elsewhere; the current stream is left
// as is until it ends.
func (s *subscriber) moveTo(streamURL string) {
	s.mu.Lock()
	s.url = streamURL
	s.mu.Unlock()
}

func (s *subscriber) run(ctx context.Context) {
	defer close(s.done)
	cursor := ""
	for ctx.Err() == nil {
		s.mu.Lock()
		u := s.url
		s.opens++
		s.mu.Unlock()
		var header http.Header
		if cursor != "" {
			header = http.Header{"Last-Event-ID": {cursor}}
		}
		st, err := ssetest.Open(ctx, u, header)
		if err != nil {
			var se *ssetest.StatusError
			if !errors.As(err, &se) && u != s.fallback {
				s.moveTo(s.fallback) // its replica is gone: the proxy knows another
			}
			if !pause(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		cursor = s.read(ctx, st, cursor)
		st.Close()
		if !pause(ctx, 50*time.Millisecond) {
			return
		}
	}
}

// read reads st until it ends, and returns the cursor to come back with.
func (s *subscriber) read(ctx context.Context, st *ssetest.Stream, cursor string) string {
	for {
		ev, err := st.Next(ctx)
		if err != nil {
			return cursor
		}
		if ev.ID != "" {
			cursor = ev.ID
		}
		switch ev.Name {
		case "activity":
			var a struct{ Type, Text string }
			_ = json.Unmarshal([]byte(ev.Data), &a)
			if a.Type == "typing" {
				continue
			}
			s.mu.Lock()
			s.texts = append(s.texts, a.Text)
			s.at = append(s.at, time.Now())
			s.mu.Unlock()
		case "status":
			var st struct{ State string }
			_ = json.Unmarshal([]byte(ev.Data), &st)
			s.mu.Lock()
			s.statuses = append(s.statuses, st.State)
			s.mu.Unlock()
		}
	}
}

func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// got returns what the subscriber received so far.
func (s *subscriber) got() ([]string, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.texts), slices.Clone(s.at)
}

func (s *subscriber) has(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.texts) >= n
}

// arrivalOf is when text arrived (zero if it did not).
func (s *subscriber) arrivalOf(text string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.texts, text); i >= 0 {
		return s.at[i]
	}
	return time.Time{}
}

// onReplica is a stream URL moved to another gateway's address.
func onReplica(t *testing.T, streamURL, addr string) string {
	t.Helper()
	u, err := url.Parse(streamURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}
