package directlinetest

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// LoadConfig describes a bot load: stamped messages (see PushStamped) sent
// round after round to a list of conversations at a steady pace.
type LoadConfig struct {
	// Conversations receive the messages, one after the other in this
	// order, round after round. Empty means every conversation the Server
	// has, in id order.
	Conversations []string
	// Interval is how often each conversation gets a message. The sends of
	// a round are spread evenly over it: message k of the whole load goes
	// out at start + k×Interval/len(Conversations), so no two
	// conversations are hit at once. Zero sends as fast as the Server can
	// (a burst).
	Interval time.Duration
	// Rounds is how many messages each conversation gets; zero means until
	// the load is stopped.
	Rounds int
	// Prefix starts each message's text, which ends with the round number
	// (from 1). Empty means "load ".
	Prefix string
}

// LoadStatus is what a load has done so far.
type LoadStatus struct {
	Running       bool  `json:"running"`
	Conversations int   `json:"conversations"`
	Sent          int64 `json:"sent"`   // messages delivered to the history (and socket, if any)
	Errors        int64 `json:"errors"` // messages for conversations the Server does not know
	// MaxLagMs is how far behind its schedule the load fell at worst: a
	// large value means the Server could not keep the requested pace, so
	// a benchmark's rate was not the one it asked for.
	MaxLagMs float64 `json:"maxLagMs"`
}

// Load is a running bot load, started by StartLoad. The Server owns its
// goroutine: Close stops it too.
type Load struct {
	s     *Server
	convs []string
	cfg   LoadConfig

	sent, errs atomic.Int64
	maxLag     atomic.Int64 // nanoseconds

	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}
}

// Errors StartLoad returns.
var (
	ErrNoConversations = errors.New("directlinetest: load has no conversation")
	ErrServerClosed    = errors.New("directlinetest: server closed")
	errBadLoad         = errors.New("directlinetest: load interval and rounds must not be negative")
)

// StartLoad starts sending stamped bot messages as cfg says and returns at
// once. Unknown conversation ids are counted as errors, not refused, so a
// long load does not stop on one bad id.
func (s *Server) StartLoad(cfg LoadConfig) (*Load, error) {
	if cfg.Interval < 0 || cfg.Rounds < 0 {
		return nil, errBadLoad
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "load "
	}
	l := &Load{s: s, cfg: cfg, stopCh: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrServerClosed
	}
	l.convs = slices.Clone(cfg.Conversations)
	if len(l.convs) == 0 {
		for id := range s.convs {
			l.convs = append(l.convs, id)
		}
		slices.Sort(l.convs)
	}
	if len(l.convs) == 0 {
		return nil, ErrNoConversations
	}
	// Added under mu while not closed, so Close's Wait cannot miss it.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(l.done)
		l.run()
	}()
	return l, nil
}

// run sends the messages on schedule until the rounds are done, the load
// is stopped or the Server closes. When it falls behind it sends what is
// due without waiting, and remembers by how much it was late.
func (l *Load) run() {
	n := int64(len(l.convs))
	total := int64(l.cfg.Rounds) * n // 0: no end
	start := time.Now()
	var timer *time.Timer
	if l.cfg.Interval > 0 {
		timer = time.NewTimer(time.Hour)
		defer timer.Stop()
	}
	for k := int64(0); total == 0 || k < total; k++ {
		if timer != nil {
			// Split to keep k×Interval from overflowing on long loads.
			due := start.Add(time.Duration(k/n)*l.cfg.Interval + time.Duration(k%n*int64(l.cfg.Interval)/n))
			if wait := time.Until(due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-l.stopCh:
					return
				case <-l.s.closing:
					return
				}
			} else if lag := int64(-wait); lag > l.maxLag.Load() {
				l.maxLag.Store(lag) // only this goroutine writes it
			}
		} else {
			select {
			case <-l.stopCh:
				return
			case <-l.s.closing:
				return
			default:
			}
		}
		text := l.cfg.Prefix + strconv.FormatInt(k/n+1, 10)
		if err := l.s.pushTexts(l.convs[k%n], []string{text}, false, true); err != nil {
			l.errs.Add(1)
		} else {
			l.sent.Add(1)
		}
	}
}

// Status reports what the load has done so far.
func (l *Load) Status() LoadStatus {
	running := true
	select {
	case <-l.done:
		running = false
	default:
	}
	return LoadStatus{
		Running:       running,
		Conversations: len(l.convs),
		Sent:          l.sent.Load(),
		Errors:        l.errs.Load(),
		MaxLagMs:      float64(l.maxLag.Load()) / float64(time.Millisecond),
	}
}

// Done is closed when the load has ended: all rounds sent, stopped, or the
// Server closed.
func (l *Load) Done() <-chan struct{} { return l.done }

// Stop ends the load, waits for its goroutine and returns its final
// status. It is safe to call more than once and after the load ended.
func (l *Load) Stop() LoadStatus {
	l.stopOnce.Do(func() { close(l.stopCh) })
	<-l.done
	return l.Status()
}
