package turn

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestTakeRelease(t *testing.T) {
	var tn Turn
	if !tn.Idle() || !tn.Take() {
		t.Fatal("a zero Turn is not taken")
	}
	if tn.Take() {
		t.Fatal("a held turn was taken again")
	}
	if tn.Release() {
		t.Fatal("Release let go although a Take asked for another round")
	}
	if !tn.Release() || !tn.Idle() {
		t.Fatal("a round without Takes did not let go")
	}
	tn.End()
	if tn.Take() || !tn.Ended() || tn.Idle() {
		t.Fatal("an ended turn was taken")
	}
}

// TestNoCallLost: however Takes and rounds interleave, every Take is
// followed by a round that began after it, and rounds never overlap.
func TestNoCallLost(t *testing.T) {
	var (
		tn      Turn
		calls   atomic.Int64 // Takes made
		seen    atomic.Int64 // Takes a round began after
		inRound atomic.Int32
		wg      sync.WaitGroup
	)
	round := func() {
		for {
			if inRound.Add(1) != 1 {
				t.Error("two rounds at once")
			}
			seen.Store(calls.Load())
			inRound.Add(-1)
			if tn.Release() {
				return
			}
		}
	}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10000 {
				calls.Add(1)
				if tn.Take() {
					round()
				}
			}
		}()
	}
	wg.Wait()
	if seen.Load() != calls.Load() {
		t.Fatalf("the last round saw %d of %d calls", seen.Load(), calls.Load())
	}
}
