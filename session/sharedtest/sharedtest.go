// Package sharedtest is the conformance suite of session.Shared: leases,
// the journal and the bus, as every implementation (memory, Redis) must
// provide them. An implementation's tests call Run with a factory.
package sharedtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse"
)

// Factory returns a Shared of its own (no state shared with another call)
// whose journal keeps the newest keep records of each conversation.
type Factory func(t *testing.T, keep int) session.Shared

// Run runs the suite.
func Run(t *testing.T, newShared Factory) {
	for _, c := range []struct {
		name string
		test func(*testing.T, Factory)
	}{
		{"LeaseIsExclusive", testLeaseIsExclusive},
		{"LeaseExpires", testLeaseExpires},
		{"ReleaseIsAnnounced", testReleaseIsAnnounced},
		{"StaleOwnerIsFenced", testStaleOwnerIsFenced},
		{"JournalKeepsOrderAndContent", testJournalKeepsOrderAndContent},
		{"JournalGaps", testJournalGaps},
		{"AppendIsAnnounced", testAppendIsAnnounced},
		{"BusSkipsTheSender", testBusSkipsTheSender},
		{"FollowStops", testFollowStops},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, newShared) })
	}
}

const ttl = 10 * time.Second

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// conv names a conversation of this test only.
func conv(t *testing.T) string { return "c-" + t.Name() }

func acquire(t *testing.T, sh session.Shared, conv, holder string, d time.Duration) session.Lease {
	t.Helper()
	l, _, err := sh.Leases.Acquire(ctx(t), conv, holder, d)
	if err != nil {
		t.Fatalf("%s: acquire %s: %v", holder, conv, err)
	}
	if l.Conversation != conv || l.Holder != holder {
		t.Fatalf("lease %+v for %s, %s", l, conv, holder)
	}
	return l
}

func testLeaseIsExclusive(t *testing.T, f Factory) {
	sh := f(t, 0)
	id := conv(t)
	a := acquire(t, sh, id, "a", ttl)
	_, left, err := sh.Leases.Acquire(ctx(t), id, "b", ttl)
	if !errors.Is(err, session.ErrNotOwner) || left <= 0 || left > ttl {
		t.Fatalf("second acquire: %v, left %v; want ErrNotOwner with up to %v left", err, left, ttl)
	}
	if err := sh.Leases.Renew(ctx(t), a, ttl); err != nil {
		t.Fatalf("renew by the holder: %v", err)
	}
	forged := a
	forged.Holder = "b"
	if err := sh.Leases.Renew(ctx(t), forged, ttl); !errors.Is(err, session.ErrNotOwner) {
		t.Fatalf("renew by another holder: %v, want ErrNotOwner", err)
	}
	if err := sh.Leases.Release(ctx(t), forged); err != nil {
		t.Fatalf("release by another holder: %v", err)
	}
	if _, _, err := sh.Leases.Acquire(ctx(t), id, "b", ttl); !errors.Is(err, session.ErrNotOwner) {
		t.Fatalf("another holder's release freed the lease: %v", err)
	}
	if err := sh.Leases.Release(ctx(t), a); err != nil {
		t.Fatal(err)
	}
	b := acquire(t, sh, id, "b", ttl)
	if b.Fence <= a.Fence {
		t.Errorf("fence %d after %d: fences must grow", b.Fence, a.Fence)
	}
	if err := sh.Leases.Renew(ctx(t), a, ttl); !errors.Is(err, session.ErrNotOwner) {
		t.Errorf("renew of a released lease: %v, want ErrNotOwner", err)
	}
	// Another conversation is another lease.
	acquire(t, sh, id+"-other", "a", ttl)
}

func testLeaseExpires(t *testing.T, f Factory) {
	sh := f(t, 0)
	id := conv(t)
	a := acquire(t, sh, id, "a", 200*time.Millisecond)
	var b session.Lease
	waitFor(t, "the lease to expire", func() bool {
		l, _, err := sh.Leases.Acquire(ctx(t), id, "b", ttl)
		b = l
		return err == nil
	})
	if b.Fence <= a.Fence {
		t.Errorf("fence %d after %d", b.Fence, a.Fence)
	}
	if err := sh.Leases.Renew(ctx(t), a, ttl); !errors.Is(err, session.ErrNotOwner) {
		t.Errorf("renew of an expired lease another holds: %v, want ErrNotOwner", err)
	}
}

func testReleaseIsAnnounced(t *testing.T, f Factory) {
	sh := f(t, 0)
	id := conv(t)
	got := follow(t, sh, id, "b")
	a := acquire(t, sh, id, "a", ttl)
	if err := sh.Leases.Release(ctx(t), a); err != nil {
		t.Fatal(err)
	}
	if m := got.next(t); m.Kind != session.KindReleased {
		t.Fatalf("got %+v, want KindReleased", m)
	}
}

func testStaleOwnerIsFenced(t *testing.T, f Factory) {
	sh := f(t, 16)
	id := conv(t)
	got := follow(t, sh, id, "c")
	a := acquire(t, sh, id, "a", 200*time.Millisecond)
	if _, err := sh.Journal.Append(ctx(t), a, entries(1, 1), "1"); err != nil {
		t.Fatal(err)
	}
	var b session.Lease
	waitFor(t, "the lease to expire", func() bool {
		l, _, err := sh.Leases.Acquire(ctx(t), id, "b", ttl)
		b = l
		return err == nil
	})
	if _, err := sh.Journal.Append(ctx(t), a, entries(2, 1), "2"); !errors.Is(err, session.ErrNotOwner) {
		t.Fatalf("append by the stale owner: %v, want ErrNotOwner", err)
	}
	if err := sh.Bus.PublishOwned(ctx(t), a, session.Message{Kind: session.KindStatus, Status: session.Status{State: session.StateOnline}}); !errors.Is(err, session.ErrNotOwner) {
		t.Fatalf("publish by the stale owner: %v, want ErrNotOwner", err)
	}
	if _, err := sh.Journal.Append(ctx(t), b, entries(2, 1), "2"); err != nil {
		t.Fatal(err)
	}
	// The follower saw the first append, then the new owner's: nothing of
	// the stale owner's.
	for _, want := range []uint64{1, 2} {
		m := got.next(t)
		if m.Kind != session.KindAppended || m.Records[0].Entry.Hash != want {
			t.Fatalf("got %+v, want the append of entry %d", m, want)
		}
	}
	snap, err := sh.Journal.Tail(ctx(t), id, 10)
	if err != nil || len(snap.Records) != 2 {
		t.Fatalf("journal %v, %v: want the two appends of owners", snap.Records, err)
	}
}

func testJournalKeepsOrderAndContent(t *testing.T, f Factory) {
	sh := f(t, 100)
	id := conv(t)
	l := acquire(t, sh, id, "a", ttl)
	got := follow(t, sh, id, "b")
	if snap, err := sh.Journal.Tail(ctx(t), id, 10); err != nil || len(snap.Records) != 0 || snap.Watermark != "" || snap.Status.State != "" {
		t.Fatalf("empty journal: %+v %v", snap, err)
	}
	first, err := sh.Journal.Append(ctx(t), l, entries(1, 3), "3")
	if err != nil {
		t.Fatal(err)
	}
	if first.Offset != 3 || first.Epoch == "" {
		t.Fatalf("position %+v after 3 entries", first)
	}
	got.next(t)
	// A set without a watermark keeps the previous one; an empty one
	// moves only the watermark.
	if _, err := sh.Journal.Append(ctx(t), l, entries(4, 2), ""); err != nil {
		t.Fatal(err)
	}
	got.next(t)
	last, err := sh.Journal.Append(ctx(t), l, nil, "7")
	if err != nil {
		t.Fatal(err)
	}
	if m := got.next(t); m.Kind != session.KindAppended || len(m.Records) != 0 || m.Pos != last || m.Watermark != "7" {
		t.Fatalf("an append of nothing announced %+v, want its position %v and watermark", m, last)
	}
	if last.Epoch != first.Epoch || last.Offset != 5 {
		t.Fatalf("position %+v after 5 entries (first %+v)", last, first)
	}
	snap, err := sh.Journal.Tail(ctx(t), id, 10)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Watermark != "7" {
		t.Errorf("watermark %q, want 7", snap.Watermark)
	}
	want := append(entries(1, 3), entries(4, 2)...)
	checkRecords(t, "tail", snap.Records, want, 1)
	recs := snap.Records
	recs, err = sh.Journal.Read(ctx(t), id, session.Position{Epoch: first.Epoch, Offset: 1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, "read after 1, 2 of them", recs, want[1:3], 2)
	if recs, err := sh.Journal.Read(ctx(t), id, last, 10); err != nil || len(recs) != 0 {
		t.Errorf("read after the end: %v %v", recs, err)
	}
	snap, _ = sh.Journal.Tail(ctx(t), id, 2)
	checkRecords(t, "tail of 2", snap.Records, want[3:], 4)
	// The owner's last status is kept.
	st := session.Status{State: session.StateOnline, Reason: "x", RetryIn: 3}
	for _, s := range []session.Status{{State: session.StateConnecting}, st} {
		if err := sh.Bus.PublishOwned(ctx(t), l, session.Message{Kind: session.KindStatus, Status: s}); err != nil {
			t.Fatal(err)
		}
	}
	if snap, _ := sh.Journal.Tail(ctx(t), id, 0); snap.Status != st {
		t.Errorf("status %+v, want the last published %+v", snap.Status, st)
	}
}

func testJournalGaps(t *testing.T, f Factory) {
	sh := f(t, 4)
	id := conv(t)
	l := acquire(t, sh, id, "a", ttl)
	pos, err := sh.Journal.Append(ctx(t), l, entries(1, 10), "10")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Journal.Read(ctx(t), id, session.Position{Epoch: pos.Epoch, Offset: 2}, 10); !errors.Is(err, session.ErrGap) {
		t.Errorf("read from a trimmed position: %v, want ErrGap", err)
	}
	if _, err := sh.Journal.Read(ctx(t), id, session.Position{Epoch: pos.Epoch + "x", Offset: 9}, 10); !errors.Is(err, session.ErrGap) {
		t.Errorf("read from another epoch: %v, want ErrGap", err)
	}
	recs, err := sh.Journal.Read(ctx(t), id, session.Position{Epoch: pos.Epoch, Offset: 6}, 10)
	if err != nil {
		t.Fatalf("read from the oldest kept: %v", err)
	}
	checkRecords(t, "kept", recs, entries(7, 4), 7)
	if snap, _ := sh.Journal.Tail(ctx(t), id, 100); len(snap.Records) != 4 {
		t.Errorf("kept %d records, want 4", len(snap.Records))
	}
}

func testAppendIsAnnounced(t *testing.T, f Factory) {
	sh := f(t, 0)
	id := conv(t)
	got := follow(t, sh, id, "b")
	l := acquire(t, sh, id, "a", ttl)
	var want []session.Entry
	for i := range 20 {
		e := entries(uint64(i+1), 1)
		want = append(want, e...)
		if _, err := sh.Journal.Append(ctx(t), l, e, fmt.Sprint(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sh.Bus.PublishOwned(ctx(t), l, session.Message{Kind: session.KindEphemeral, Entry: session.Entry{Event: sse.Event("typing\n\n")}}); err != nil {
		t.Fatal(err)
	}
	var recs []session.Record
	for range 20 {
		m := got.next(t)
		if m.Kind != session.KindAppended || len(m.Records) != 1 || m.Watermark != fmt.Sprint(m.Records[0].Pos.Offset) ||
			m.Pos != m.Records[0].Pos {
			t.Fatalf("got %+v, want one appended record with its watermark and position", m)
		}
		recs = append(recs, m.Records...)
	}
	checkRecords(t, "announced", recs, want, 1)
	if m := got.next(t); m.Kind != session.KindEphemeral || string(m.Entry.Event) != "typing\n\n" {
		t.Fatalf("got %+v, want the ephemeral entry", m)
	}
}

func testBusSkipsTheSender(t *testing.T, f Factory) {
	sh := f(t, 0)
	id := conv(t)
	a, b := follow(t, sh, id, "a"), follow(t, sh, id, "b")
	if err := sh.Bus.Publish(ctx(t), id, "a", session.Message{Kind: session.KindSender, Sender: "u1"}); err != nil {
		t.Fatal(err)
	}
	if err := sh.Bus.Publish(ctx(t), id, "b", session.Message{Kind: session.KindSender, Sender: "u2"}); err != nil {
		t.Fatal(err)
	}
	if m := b.next(t); m.Sender != "u1" {
		t.Errorf("b got %+v, want a's message", m)
	}
	if m := a.next(t); m.Sender != "u2" {
		t.Errorf("a got %+v, want b's message (and not its own)", m)
	}
	var tok [32]byte
	tok[0] = 7
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := sh.Bus.Publish(ctx(t), id, "c", session.Message{Kind: session.KindRefreshed, Token: tok, Expires: exp}); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*got{a, b} {
		if m := g.next(t); m.Kind != session.KindRefreshed || m.Token != tok || !m.Expires.Equal(exp) {
			t.Errorf("got %+v, want the refresh", m)
		}
	}
}

func testFollowStops(t *testing.T, f Factory) {
	sh := f(t, 0)
	id := conv(t)
	got := follow(t, sh, id, "b")
	l := acquire(t, sh, id, "a", ttl)
	if _, err := sh.Journal.Append(ctx(t), l, entries(1, 1), "1"); err != nil {
		t.Fatal(err)
	}
	got.next(t)
	got.stop()
	if _, err := sh.Journal.Append(ctx(t), l, entries(2, 1), "2"); err != nil {
		t.Fatal(err)
	}
	// Another follower sees the second append; by then the stopped one
	// would have too.
	other := follow(t, sh, id, "c")
	if _, err := sh.Journal.Append(ctx(t), l, entries(3, 1), "3"); err != nil {
		t.Fatal(err)
	}
	other.next(t)
	if n := got.count(); n != 1 {
		t.Errorf("a stopped follower got %d messages, want 1", n)
	}
}

// entries returns n durable entries with hashes from, from+1...
func entries(from uint64, n int) []session.Entry {
	out := make([]session.Entry, n)
	for i := range out {
		h := from + uint64(i)
		out[i] = session.Entry{
			Event:   sse.NewEvent(fmt.Sprintf("%d~x", h), "activity", []byte(fmt.Sprintf(`{"n":%d,"t":"line\u2028two"}`, h))),
			Durable: h%5 != 0,
			Hash:    h,
			Base:    fmt.Sprint(h - 1),
		}
		if i == n-1 {
			out[i].After = fmt.Sprint(h)
		}
	}
	return out
}

// checkRecords compares records with the entries they should hold, at
// consecutive offsets from first.
func checkRecords(t *testing.T, what string, recs []session.Record, want []session.Entry, first uint64) {
	t.Helper()
	if len(recs) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(recs), len(want))
	}
	for i, r := range recs {
		w := want[i]
		e := r.Entry
		if r.Pos.Offset != first+uint64(i) || string(e.Event) != string(w.Event) || e.Durable != w.Durable ||
			e.Hash != w.Hash || e.Base != w.Base || e.After != w.After {
			t.Fatalf("%s: record %d = %+v at %v, want %+v at offset %d", what, i, e, r.Pos, w, first+uint64(i))
		}
	}
}

// got collects what a follower receives.
type got struct {
	mu   sync.Mutex
	msgs []session.Message
	seen int // handed out by next
	wake chan struct{}
	stop func()
}

func follow(t *testing.T, sh session.Shared, conv, replica string) *got {
	t.Helper()
	g := &got{wake: make(chan struct{}, 1)}
	stop, err := sh.Bus.Follow(conv, replica, func(m session.Message) {
		g.mu.Lock()
		g.msgs = append(g.msgs, m)
		g.mu.Unlock()
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}, func() {})
	if err != nil {
		t.Fatalf("follow: %v", err)
	}
	g.stop = stop
	t.Cleanup(stop)
	return g
}

// next returns the next message received, waiting for it.
func (g *got) next(t *testing.T) session.Message {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		if g.seen < len(g.msgs) {
			m := g.msgs[g.seen]
			g.seen++
			g.mu.Unlock()
			return m
		}
		g.mu.Unlock()
		select {
		case <-g.wake:
		case <-deadline.C:
			t.Fatal("no message within 10 s")
		}
	}
}

func (g *got) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.msgs)
}

// waitFor polls cond until it holds, for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
