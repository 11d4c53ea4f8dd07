// Package proc runs dlsse and the Direct Line fake as processes of their
// own, for the benchmark and the end-to-end tests that need real processes
// (the cluster test signals them: SIGKILL, SIGSTOP).
package proc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build builds dlsse and the Direct Line fake into dir with the go tool,
// from the module this package belongs to (with the race detector when
// race is set).
func Build(ctx context.Context, dir string, race bool) (dlsse, fake string, err error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return "", "", err
	}
	dlsse, fake = filepath.Join(dir, "dlsse"), filepath.Join(dir, "directline-fake")
	for _, b := range []struct{ out, pkg string }{{dlsse, "./cmd/dlsse"}, {fake, "./cmd/directline-fake"}} {
		args := []string{"build", "-o", b.out}
		if race {
			args = append(args, "-race")
		}
		cmd := exec.CommandContext(ctx, "go", append(args, b.pkg)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out)
		}
	}
	return dlsse, fake, nil
}

// ModuleRoot is the directory of the main module (where go.mod is).
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the dlsse module: run from the repository")
	}
	return filepath.Dir(mod), nil
}

// Child is a process started by Start; Stop ends it and waits for it.
type Child struct {
	Name   string
	Cmd    *exec.Cmd
	Log    *os.File      // its stderr (and stdout after the first line)
	Exited chan struct{} // closed once Wait returned
	Err    error         // Wait's result, set before Exited closes
}

// Start starts bin with args; its stderr goes to logPath, its stdout to
// stdout (nil: the log).
func Start(name, bin string, args []string, logPath string, stdout *LineCatcher) (*Child, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = f
	cmd.Stdout = f
	if stdout != nil {
		stdout.rest = f
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{Name: name, Cmd: cmd, Log: f, Exited: make(chan struct{})}
	// Wait also ends os/exec's copy of stdout; this goroutine is owned by
	// c and ends with the process, which Stop guarantees.
	go func() {
		c.Err = cmd.Wait()
		close(c.Exited)
	}()
	return c, nil
}

// PID is the process id as /proc names it.
func (c *Child) PID() string { return strconv.Itoa(c.Cmd.Process.Pid) }

// Signal sends sig to the process.
func (c *Child) Signal(sig os.Signal) error { return c.Cmd.Process.Signal(sig) }

// Stop asks the process to end (SIGTERM), waits up to grace, then kills
// it. It returns an error when the process had to be killed or had
// already failed (a SIGKILL sent on purpose is no failure). Safe to call
// more than once.
func (c *Child) Stop(grace time.Duration) error {
	select {
	case <-c.Exited:
	default:
		_ = c.Cmd.Process.Signal(syscall.SIGCONT) // a stopped process cannot end
		_ = c.Cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case <-c.Exited:
			t.Stop()
		case <-t.C:
			_ = c.Cmd.Process.Kill()
			<-c.Exited
			c.Log.Close()
			return fmt.Errorf("%s did not stop within %v: killed", c.Name, grace)
		}
	}
	c.Log.Close()
	if c.Err != nil && !isSignalExit(c.Err) {
		return fmt.Errorf("%s: %w (log: %s)", c.Name, c.Err, c.Log.Name())
	}
	return nil
}

func isSignalExit(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal() == syscall.SIGTERM || ws.Signal() == syscall.SIGKILL
		}
	}
	return false
}

// LineCatcher is a child's stdout: it hands over the first line, and
// copies everything after it to the child's log.
type LineCatcher struct {
	mu    sync.Mutex
	buf   []byte
	First chan string // receives the first line once
	sent  bool
	rest  *os.File
}

// NewLineCatcher returns a LineCatcher for Start.
func NewLineCatcher() *LineCatcher { return &LineCatcher{First: make(chan string, 1)} }

func (l *LineCatcher) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sent {
		return l.rest.Write(p)
	}
	l.buf = append(l.buf, p...)
	if i := bytes.IndexByte(l.buf, '\n'); i >= 0 {
		l.sent = true
		l.First <- string(l.buf[:i])
		if _, err := l.rest.Write(l.buf[i+1:]); err != nil {
			return 0, err
		}
		l.buf = nil
	}
	return len(p), nil
}

// Fake is the Direct Line fake running as its own process.
type Fake struct {
	*Child
	URL     string // Direct Line base
	Control string // control API base
	Secret  string
}

// StartFake runs the fake and reads its hello line.
func StartFake(ctx context.Context, bin, logDir string, extra ...string) (*Fake, error) {
	lc := NewLineCatcher()
	args := append([]string{"-listen", "127.0.0.1:0", "-control", "127.0.0.1:0"}, extra...)
	c, err := Start("directline-fake", bin, args, filepath.Join(logDir, "fake.log"), lc)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(20 * time.Second)
	defer t.Stop()
	var line string
	select {
	case line = <-lc.First:
	case <-c.Exited:
		return nil, fmt.Errorf("directline-fake exited at start: %v (log: %s)", c.Err, c.Log.Name())
	case <-t.C:
		c.Stop(time.Second)
		return nil, errors.New("directline-fake printed nothing within 20s")
	case <-ctx.Done():
		c.Stop(time.Second)
		return nil, ctx.Err()
	}
	f := &Fake{Child: c}
	var hello struct{ URL, Control, Secret string }
	if err := json.Unmarshal([]byte(line), &hello); err != nil || hello.URL == "" || hello.Control == "" {
		c.Stop(time.Second)
		return nil, fmt.Errorf("directline-fake hello line %q: %v", line, err)
	}
	f.URL, f.Control, f.Secret = hello.URL, hello.Control, hello.Secret
	return f, nil
}

// Dlsse is dlsse running as its own process.
type Dlsse struct {
	*Child
	Addr string // host:port
	URL  string
}

// StartDlsse runs dlsse against the upstream at upstreamURL on addr (""
// for a free loopback port), with args after its own, and waits until it
// answers /healthz. The log goes to logPath.
func StartDlsse(ctx context.Context, bin, logPath, addr, upstreamURL string, args ...string) (*Dlsse, error) {
	if addr == "" {
		var err error
		if addr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	all := append([]string{"-listen", addr, "-upstream-url", upstreamURL}, args...) // later flags win
	c, err := Start("dlsse", bin, all, logPath, nil)
	if err != nil {
		return nil, err
	}
	d := &Dlsse{Child: c, Addr: addr, URL: "http://" + addr}
	if err := d.WaitHealthy(ctx); err != nil {
		c.Stop(time.Second)
		return nil, err
	}
	return d, nil
}

// FreeAddr picks a loopback address that is free now. Another process
// could take it before it is bound; that process then fails to start and
// says so.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// WaitHealthy polls /healthz (a process start has no other signal to wait
// on) until it answers 200, the process exits, or 20 s pass.
func (d *Dlsse) WaitHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if res, err := client.Get(d.URL + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-tick.C:
		case <-d.Exited:
			return fmt.Errorf("dlsse exited at start: %v (log: %s)", d.Err, d.Log.Name())
		case <-ctx.Done():
			return fmt.Errorf("dlsse not healthy: %w (log: %s)", ctx.Err(), d.Log.Name())
		}
	}
}
