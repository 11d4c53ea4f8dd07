package upstream_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/dlsse/dlsse/upstream"
)

// failingDial dials for real until fail holds an errno, then fails as the
// kernel does when socket(2) or connect(2) fails with it.
type failingDial struct {
	fail atomic.Value // syscall.Errno; 0: dial for real
	d    net.Dialer
}

func (f *failingDial) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if errno, _ := f.fail.Load().(syscall.Errno); errno != 0 {
		syscallName := "socket"
		if errno == syscall.ECONNREFUSED {
			syscallName = "connect"
		}
		return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError(syscallName, errno)}
	}
	return f.d.DialContext(ctx, network, addr)
}

// localErrors records Hooks.LocalResourceError calls.
type localErrors struct {
	mu    sync.Mutex
	calls []string // "op errno"
}

func (l *localErrors) hook(op string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, op+" "+err.Error())
}

func (l *localErrors) count(op string, errno syscall.Errno) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.calls {
		if c == op+" "+errno.Error() {
			n++
		}
	}
	return n
}

// TestBreakerExcludesLocalResourceErrors: a process out of descriptors (or
// the host out of them, of socket buffers, of memory) fails its REST calls
// and dials over real sockets many times more than the breaker tolerates,
// and the breaker stays closed: nothing was Direct Line's fault. Each
// failure reaches the caller with its errno, for the normal backoff, and
// the hook that logs it. Once descriptors are free again the same client
// works at once. The control case, a refused connection, still opens it.
func TestBreakerExcludesLocalResourceErrors(t *testing.T) {
	const trip = 3 // trip3: three consecutive failures open the breaker
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		t.Run(errno.Error(), func(t *testing.T) {
			fake := newFake(t)
			conv, tok, first := setup(t, fake)

			dial := &failingDial{}
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.DialContext = dial.DialContext
			t.Cleanup(tr.CloseIdleConnections)
			var seen localErrors
			c, err := upstream.New(upstream.Config{
				BaseURL:   fake.URL,
				Transport: tr,
				Breaker:   trip3(time.Minute),
				Hooks:     upstream.Hooks{LocalResourceError: seen.hook},
			})
			if err != nil {
				t.Fatal(err)
			}
			upstream.SetNetDial(c, dial.DialContext)

			dial.fail.Store(errno)
			const attempts = 3 * trip
			for i := range attempts {
				err := reconnectCall(c, conv, tok, "")
				if !errors.Is(err, errno) || !upstream.IsLocalResourceError(err) {
					t.Fatalf("reconnect %d: %v, want %v", i, err, errno)
				}
				err = dialCall(c, conv, tok, first.StreamURL)
				if !errors.Is(err, errno) || !upstream.IsLocalResourceError(err) {
					t.Fatalf("dial %d: %v, want %v", i, err, errno)
				}
				if s := c.BreakerState(); s != gobreaker.StateClosed {
					t.Fatalf("after %d failed reconnects and dials: breaker %v, want closed", i+1, s)
				}
			}
			if n := seen.count("reconnect", errno); n != attempts {
				t.Errorf("hook saw %d reconnects failing with %v, want %d", n, errno, attempts)
			}
			if n := seen.count("dial", errno); n != attempts {
				t.Errorf("hook saw %d dials failing with %v, want %d", n, errno, attempts)
			}

			dial.fail.Store(syscall.Errno(0))
			info, err := c.Reconnect(testCtx(t), tok, conv, "")
			if err != nil {
				t.Fatalf("reconnect once descriptors are free: %v", err)
			}
			if err := dialCall(c, conv, tok, info.StreamURL); err != nil {
				t.Fatalf("dial once descriptors are free: %v", err)
			}

			// Control: the same path counts a failure that is the
			// network's or the service's.
			dial.fail.Store(syscall.ECONNREFUSED)
			for i := range trip {
				if err := dialCall(c, conv, tok, first.StreamURL); !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatalf("refused dial %d: %v", i, err)
				}
			}
			if s := c.BreakerState(); s != gobreaker.StateOpen {
				t.Fatalf("after %d refused dials: breaker %v, want open", trip, s)
			}
			if n := seen.count("dial", syscall.ECONNREFUSED); n != 0 {
				t.Errorf("hook called for a refused connection (%d times): not a local resource error", n)
			}
		})
	}
}

func TestIsLocalResourceError(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{syscall.EMFILE, true},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("socket", syscall.ENFILE)}, true},
		{errors.Join(errors.New("upstream: GET"), &net.OpError{Op: "dial", Err: os.NewSyscallError("socket", syscall.ENOBUFS)}), true},
		{os.NewSyscallError("socket", syscall.ENOMEM), true},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, false},
		{context.DeadlineExceeded, false},
		{errors.New("too many open files"), false}, // only the errno counts, not its text
	}
	for _, tt := range tests {
		if got := upstream.IsLocalResourceError(tt.err); got != tt.want {
			t.Errorf("IsLocalResourceError(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
