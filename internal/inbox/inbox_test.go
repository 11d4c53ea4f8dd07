package inbox

import (
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOrderOneAtATimeAndNoIdleGoroutine(t *testing.T) {
	var mu sync.Mutex
	var got []int
	busy := 0
	done := make(chan struct{})
	b := New(func(v int) {
		mu.Lock()
		busy++
		if busy > 1 {
			t.Errorf("two calls at once")
		}
		got = append(got, v)
		n := len(got)
		mu.Unlock()
		mu.Lock()
		busy--
		mu.Unlock()
		if n == 1000 {
			close(done)
		}
	})
	for i := range 1000 {
		b.Put(i)
	}
	<-done
	for i, v := range got {
		if v != i {
			t.Fatalf("got[%d] = %d: out of order", i, v)
		}
	}
	b.Stop()
	b.Stop() // idempotent
	b.Put(7) // dropped
	if len(got) != 1000 {
		t.Errorf("a value put after Stop was handed over")
	}
}

func TestStopWaitsForTheCallInProgress(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	calls := 0
	b := New(func(int) {
		calls++
		close(entered)
		<-release
	})
	b.Put(1)
	b.Put(2) // dropped by Stop
	<-entered
	stopped := make(chan struct{})
	go func() { b.Stop(); close(stopped) }()
	for { // until Stop has said so
		b.mu.Lock()
		s := b.stopped
		b.mu.Unlock()
		if s {
			break
		}
		runtime.Gosched()
	}
	select {
	case <-stopped:
		t.Fatal("Stop returned during a call")
	default:
	}
	close(release)
	<-stopped
	if calls != 1 {
		t.Fatalf("%d calls, want 1: what was queued at Stop is dropped", calls)
	}
}
