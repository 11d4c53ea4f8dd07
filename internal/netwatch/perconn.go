package netwatch

import (
	"sync"
	"syscall"
	"time"
)

// PerConn is the portable Watcher: one goroutine per watched connection,
// parked in the runtime's poller until the connection is readable. It
// serves where epoll does not exist, and keeps Epoll honest in tests.
type PerConn struct {
	mu     sync.Mutex
	closed bool
	stops  map[*perConnWatch]struct{}
	wg     sync.WaitGroup
}

type perConnWatch struct {
	rc   syscall.RawConn
	quit chan struct{}
	once sync.Once
	done chan struct{}
	dl   interface{ SetReadDeadline(time.Time) error }
}

// NewPerConn returns a PerConn watcher.
func NewPerConn() *PerConn { return &PerConn{stops: make(map[*perConnWatch]struct{})} }

// Watch implements Watcher.
func (p *PerConn) Watch(c syscall.Conn, readable func()) (func(), error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	w := &perConnWatch{rc: rc, quit: make(chan struct{}), done: make(chan struct{})}
	w.dl, _ = c.(interface{ SetReadDeadline(time.Time) error })
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	p.stops[w] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		defer close(w.done)
		w.run(readable)
	}()
	stop := func() {
		w.stop()
		p.mu.Lock()
		delete(p.stops, w)
		p.mu.Unlock()
	}
	return stop, nil
}

// run waits for readiness without reading, inside one RawConn.Read that
// it never lets finish: the function it is given runs at every wake-up
// and returns false to wait again, so no edge is lost between two waits.
// The first call tells the owner unconditionally, for data that came
// before the wait began (a needless call costs the owner an empty read).
func (w *perConnWatch) run(readable func()) {
	_ = w.rc.Read(func(uintptr) bool {
		select {
		case <-w.quit:
			return true
		default:
		}
		readable()
		return false
	})
	select {
	case <-w.quit:
	default:
		readable() // closed or broken: the owner's read says which
	}
}

// stop wakes run with a read deadline in the past and waits for it.
func (w *perConnWatch) stop() {
	w.once.Do(func() {
		close(w.quit)
		if w.dl != nil {
			_ = w.dl.SetReadDeadline(time.Unix(1, 0))
		}
	})
	<-w.done
}

// Close implements Watcher.
func (p *PerConn) Close() error {
	p.mu.Lock()
	p.closed = true
	ws := make([]*perConnWatch, 0, len(p.stops))
	for w := range p.stops {
		ws = append(ws, w)
	}
	p.mu.Unlock()
	for _, w := range ws {
		w.stop()
	}
	p.wg.Wait()
	return nil
}
