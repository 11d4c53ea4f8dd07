package tasks_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/dlsse/dlsse/internal/tasks"
)

// TestWaitWaitsForMembersAddedBeforeClose: Wait returns only once Close was
// called and every member counted before it is done.
func TestWaitWaitsForMembersAddedBeforeClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g tasks.Group
		if !g.Add() || !g.Add() {
			t.Fatal("Add refused on an open group")
		}
		waited := make(chan error, 1)
		go func() { waited <- g.Wait(context.Background()) }()
		g.Done()
		g.Done()
		synctest.Wait()
		select {
		case <-waited:
			t.Fatal("Wait returned before Close")
		default:
		}
		g.Close()
		if err := <-waited; err != nil {
			t.Fatalf("Wait: %v", err)
		}
	})
}

// TestClosedGroupRefusesMembers: after Close no member is counted, so a late
// one cannot run behind the owner's back; Close is idempotent.
func TestClosedGroupRefusesMembers(t *testing.T) {
	var g tasks.Group
	if !g.Add() {
		t.Fatal("Add refused on an open group")
	}
	g.Close()
	g.Close()
	if g.Add() {
		t.Error("Add accepted after Close")
	}
	if n := g.Len(); n != 1 {
		t.Errorf("Len = %d, want 1", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a member running and ctx done = %v, want context.Canceled", err)
	}
	g.Done()
	if err := g.Wait(context.Background()); err != nil {
		t.Errorf("Wait after the last Done: %v", err)
	}
	if n := g.Len(); n != 0 {
		t.Errorf("Len = %d, want 0", n)
	}
}

func TestDoneWithoutAddPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Done without Add did not panic")
		}
	}()
	var g tasks.Group
	g.Done()
}
