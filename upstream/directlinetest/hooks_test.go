package directlinetest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestFailNextWithRetryAfter(t *testing.T) {
	s := newTestServer(t)
	s.FailNext(2, http.StatusTooManyRequests, "TooManyRequests", "7")
	for i := range 2 {
		r := call(t, s, "POST", "/conversations", s.Secret(), nil)
		mustStatus(t, "injected", r, http.StatusTooManyRequests, "TooManyRequests")
		if ra := r.header.Get("Retry-After"); ra != "7" {
			t.Errorf("call %d: Retry-After %q", i, ra)
		}
	}
	if st := s.Stats(); st.StartCalls != 0 {
		t.Errorf("failed calls did something: %+v", st)
	}
	start(t, s) // the plan is used up

	// Failures preempt authentication, and an empty code is ServiceError.
	s.FailNext(1, http.StatusBadGateway, "", "")
	r := call(t, s, "GET", "/conversations/whatever/activities", "", nil)
	mustStatus(t, "injected 502", r, http.StatusBadGateway, "ServiceError")
	if r.header.Get("Retry-After") != "" {
		t.Errorf("unexpected Retry-After")
	}

	s.FailNext(5, http.StatusBadGateway, "", "")
	s.FailNext(0, 0, "", "") // cancels
	start(t, s)
}

func TestLatency(t *testing.T) {
	s := newTestServer(t)
	const d = 50 * time.Millisecond
	s.SetLatency(d)
	began := time.Now()
	start(t, s)
	if took := time.Since(began); took < d {
		t.Errorf("call took %v with latency %v", took, d)
	}

	// A client that gives up does not leave the handler waiting.
	s.SetLatency(time.Hour)
	abandoned := make(chan struct{})
	s.mu.Lock()
	s.testHookLatencyAbort = func() { close(abandoned) }
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", s.URL+basePath+"/conversations", nil)
	req.Header.Set("Authorization", "Bearer "+s.Secret())
	if resp, err := s.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("call with an hour of latency returned")
	}
	select {
	case <-abandoned:
	case <-testCtx(t).Done():
		t.Fatal("handler kept waiting after its client left")
	}
}

func TestWaitForHonoursContext(t *testing.T) {
	s := newTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.WaitFor(ctx, func(Stats) bool { return false }) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitFor = %v", err)
	}

	// And it is woken by counter changes.
	wctx := testCtx(t)
	go func() { done <- s.WaitFor(wctx, func(st Stats) bool { return st.StartCalls == 1 }) }()
	start(t, s)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestCloseLeavesNothingBehind closes a Server with an open socket, a
// socket whose writer is backed up, and a REST call stuck in latency.
func TestCloseLeavesNothingBehind(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := NewServer(WithKeepalive(time.Millisecond))
	convID, _, url := start(t, s)
	ws, _, err := dialRaw(url)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := s.Push(convID, "x"); err != nil {
		t.Fatal(err)
	}
	s.SetLatency(time.Hour)
	waiting := make(chan struct{}, 1)
	s.mu.Lock()
	s.testHookLatency = func() { waiting <- struct{}{} }
	s.mu.Unlock()
	stuck := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", s.URL+basePath+"/conversations", nil)
		req.Header.Set("Authorization", "Bearer "+s.Secret())
		resp, err := s.Client().Do(req)
		if err != nil {
			stuck <- 0
			return
		}
		resp.Body.Close()
		stuck <- resp.StatusCode
	}()
	// Close must cope with a call that is inside the server, waiting.
	select {
	case <-waiting:
	case <-testCtx(t).Done():
		t.Fatal("request never arrived")
	}
	s.Close()
	s.Close() // idempotent
	if code := <-stuck; code != http.StatusServiceUnavailable && code != 0 {
		t.Errorf("stuck call answered %d", code)
	}
	if err := ws.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	for {
		_, _, err := ws.ReadMessage()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("socket survived Close")
		}
		if err != nil {
			break
		}
	}
}
