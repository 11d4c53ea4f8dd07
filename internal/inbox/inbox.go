// Package inbox hands values to a function in the order they were put, one
// at a time, on a goroutine that exists only while there is something to
// hand over: whoever puts never waits for the function, and an idle inbox
// costs no goroutine.
package inbox

import "sync"

// Inbox is a queue in front of a function. The zero value is not usable;
// make one with New.
type Inbox[T any] struct {
	fn func(T)

	mu       sync.Mutex // a leaf: Put may be called under other locks
	queue    []T
	running  bool
	stopped  bool
	finished chan struct{} // closed when the running goroutine ends; nil when none ran
}

// New returns an Inbox that calls fn.
func New[T any](fn func(T)) *Inbox[T] { return &Inbox[T]{fn: fn} }

// Put queues v; after Stop it is dropped.
func (b *Inbox[T]) Put(v T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	b.queue = append(b.queue, v)
	if !b.running {
		b.running = true
		b.finished = make(chan struct{})
		go b.run(b.finished)
	}
}

func (b *Inbox[T]) run(finished chan struct{}) {
	defer close(finished)
	for {
		b.mu.Lock()
		if len(b.queue) == 0 || b.stopped {
			b.queue = nil
			b.running = false
			b.mu.Unlock()
			return
		}
		v := b.queue[0]
		var zero T
		b.queue[0] = zero
		b.queue = b.queue[1:]
		b.mu.Unlock()
		b.fn(v)
	}
}

// Stop drops what is queued, hands nothing more over and waits for a call
// in progress. It must not be called from fn. Idempotent.
func (b *Inbox[T]) Stop() {
	b.mu.Lock()
	b.stopped = true
	finished := b.finished
	b.mu.Unlock()
	if finished != nil {
		<-finished
	}
}
