package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/dlsse/dlsse/cluster"
	"github.com/dlsse/dlsse/internal/redistest"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/session/sharedtest"
	"github.com/dlsse/dlsse/sse"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var prefixes atomic.Int64

// newRedis connects to srv with a key prefix of its own.
func newRedis(t *testing.T, srv *redistest.Server, keep int) *cluster.Redis {
	t.Helper()
	r, err := cluster.New(cluster.Config{
		URL:    srv.URL(),
		Prefix: fmt.Sprintf("t%d", prefixes.Add(1)),
		Keep:   keep,
		Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func TestRedisConforms(t *testing.T) {
	srv := redistest.Start(t)
	sharedtest.Run(t, func(t *testing.T, keep int) session.Shared {
		if keep == 0 {
			keep = 1 // a stream keeps at least one entry
		}
		return newRedis(t, srv, keep).Shared()
	})
}

// Redis restarting (empty): followers are told they may have missed
// messages, health follows the connection, and the journal starts over
// (a position of before is a gap).
func TestRedisRestartIsAGap(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv, 16).Shared()
	gaps := make(chan struct{}, 4)
	stop, err := r.Bus.Follow("c1", "b", func(session.Message) {}, func() { gaps <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	drain(gaps)
	l, _, err := r.Leases.Acquire(ctx(t), "c1", "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pos, err := r.Journal.Append(ctx(t), l, []session.Entry{{Event: sse.Event("x\n\n"), Durable: true, Hash: 1}}, "1")
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	waitFor(t, "unhealthy", func() bool { return !r.Healthy() })
	srv.Restart()
	waitFor(t, "healthy", func() bool { return r.Healthy() })
	select {
	case <-gaps:
	case <-time.After(10 * time.Second):
		t.Fatal("no gap after Redis came back")
	}
	// A call on a broken connection fails (nothing is retried behind the
	// caller's back); calls after it reconnect.
	if err := settled(func() error { _, err := r.Journal.Read(ctx(t), "c1", pos, 10); return err }); !errors.Is(err, session.ErrGap) {
		t.Errorf("read from before the restart: %v, want ErrGap", err)
	}
	if err := settled(func() error { return r.Leases.Renew(ctx(t), l, time.Minute) }); !errors.Is(err, session.ErrNotOwner) {
		t.Errorf("renew of a lease Redis forgot: %v, want ErrNotOwner", err)
	}
	if err := settled(func() error { _, err := r.Journal.Append(ctx(t), l, nil, "2"); return err }); !errors.Is(err, session.ErrNotOwner) {
		t.Errorf("append under a lease Redis forgot: %v, want ErrNotOwner", err)
	}
	l2, _, err := r.Leases.Acquire(ctx(t), "c1", "a", time.Minute)
	if err != nil || l2.Fence <= l.Fence {
		t.Errorf("fence after a restart: %d (%v), want more than %d", l2.Fence, err, l.Fence)
	}
}

// FLUSHALL: the journal starts over with another epoch.
func TestRedisFlushIsANewEpoch(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv, 16).Shared()
	l, _, err := r.Leases.Acquire(ctx(t), "c1", "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pos, err := r.Journal.Append(ctx(t), l, []session.Entry{{Event: sse.Event("x\n\n"), Durable: true, Hash: 1}}, "1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	l2, _, err := r.Leases.Acquire(ctx(t), "c1", "a", time.Minute)
	if err != nil || l2.Fence <= l.Fence {
		t.Fatalf("fence after FLUSHALL: %d (%v), want more than %d", l2.Fence, err, l.Fence)
	}
	pos2, err := r.Journal.Append(ctx(t), l2, []session.Entry{{Event: sse.Event("y\n\n"), Durable: true, Hash: 2}}, "2")
	if err != nil {
		t.Fatal(err)
	}
	if pos2.Epoch == pos.Epoch {
		t.Errorf("the same epoch %q after FLUSHALL", pos.Epoch)
	}
	if _, err := r.Journal.Read(ctx(t), "c1", pos, 10); !errors.Is(err, session.ErrGap) {
		t.Errorf("read from before FLUSHALL: %v, want ErrGap", err)
	}
}

// settled calls f until it answers something other than a connection
// error (at most a few times: one per connection the client had).
func settled(f func() error) error {
	var err error
	for range 5 {
		if err = f(); err == nil || errors.Is(err, session.ErrGap) || errors.Is(err, session.ErrNotOwner) {
			return err
		}
	}
	return err
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func drain(c chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
