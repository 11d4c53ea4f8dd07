package main

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

// buildBinaries builds dlsse and the Direct Line fake into dir with the
// go tool, from the module the bench belongs to (with the race detector
// when race is set).
func buildBinaries(ctx context.Context, dir string, race bool) (dlsse, fake string, err error) {
	root, err := moduleRoot(ctx)
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

// moduleRoot is the directory of the main module (where go.mod is).
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the dlsse module: run from the repository, or pass -dlsse and -fake")
	}
	return filepath.Dir(mod), nil
}

// child is a process the bench started; stop ends it and waits for it.
type child struct {
	name   string
	cmd    *exec.Cmd
	log    *os.File      // its stderr (and stdout after the first line)
	exited chan struct{} // closed once Wait returned
	err    error         // Wait's result, set before exited closes
}

// startChild starts bin with args; its stderr goes to logPath, its stdout
// to stdout (nil: the log).
func startChild(name, bin string, args []string, logPath string, stdout *lineCatcher) (*child, error) {
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
	c := &child{name: name, cmd: cmd, log: f, exited: make(chan struct{})}
	// Wait also ends os/exec's copy of stdout; this goroutine is owned by
	// c and ends with the process, which stop guarantees.
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// pid is the process id as /proc names it.
func (c *child) pid() string { return strconv.Itoa(c.cmd.Process.Pid) }

// stop asks the process to end (SIGTERM), waits up to grace, then kills
// it. It returns an error when the process had to be killed or had already
// failed. Safe to call more than once.
func (c *child) stop(grace time.Duration) error {
	select {
	case <-c.exited:
	default:
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case <-c.exited:
			t.Stop()
		case <-t.C:
			_ = c.cmd.Process.Kill()
			<-c.exited
			c.log.Close()
			return fmt.Errorf("%s did not stop within %v: killed", c.name, grace)
		}
	}
	c.log.Close()
	if c.err != nil && !isSignalExit(c.err) {
		return fmt.Errorf("%s: %w (log: %s)", c.name, c.err, c.log.Name())
	}
	return nil
}

func isSignalExit(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal() == syscall.SIGTERM
		}
	}
	return false
}

// lineCatcher is a child's stdout: it hands over the first line, and
// copies everything after it to rest.
type lineCatcher struct {
	mu    sync.Mutex
	buf   []byte
	first chan string // receives the first line once
	sent  bool
	rest  *os.File
}

func newLineCatcher() *lineCatcher { return &lineCatcher{first: make(chan string, 1)} }

func (l *lineCatcher) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sent {
		return l.rest.Write(p)
	}
	l.buf = append(l.buf, p...)
	if i := bytes.IndexByte(l.buf, '\n'); i >= 0 {
		l.sent = true
		l.first <- string(l.buf[:i])
		if _, err := l.rest.Write(l.buf[i+1:]); err != nil {
			return 0, err
		}
		l.buf = nil
	}
	return len(p), nil
}

// fakeProc is the Direct Line fake running as its own process.
type fakeProc struct {
	*child
	URL     string // Direct Line base
	Control string // control API base
	Secret  string
}

// startFake runs the fake and reads its hello line.
func startFake(ctx context.Context, bin, logDir string) (*fakeProc, error) {
	lc := newLineCatcher()
	c, err := startChild("directline-fake", bin, []string{"-listen", "127.0.0.1:0", "-control", "127.0.0.1:0"},
		filepath.Join(logDir, "fake.log"), lc)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(20 * time.Second)
	defer t.Stop()
	var line string
	select {
	case line = <-lc.first:
	case <-c.exited:
		return nil, fmt.Errorf("directline-fake exited at start: %v (log: %s)", c.err, c.log.Name())
	case <-t.C:
		c.stop(time.Second)
		return nil, errors.New("directline-fake printed nothing within 20s")
	case <-ctx.Done():
		c.stop(time.Second)
		return nil, ctx.Err()
	}
	f := &fakeProc{child: c}
	var hello struct{ URL, Control, Secret string }
	if err := json.Unmarshal([]byte(line), &hello); err != nil || hello.URL == "" || hello.Control == "" {
		c.stop(time.Second)
		return nil, fmt.Errorf("directline-fake hello line %q: %v", line, err)
	}
	f.URL, f.Control, f.Secret = hello.URL, hello.Control, hello.Secret
	return f, nil
}

// dlsseProc is the gateway under test.
type dlsseProc struct {
	*child
	Addr string // host:port
	URL  string
}

// startDlsse runs dlsse against the fake with limits that never refuse a
// benchmark client (everything comes from a few loopback addresses), and
// waits until it answers /healthz.
func startDlsse(ctx context.Context, bin, logDir, upstreamURL string, streamsPerConversation int, extra []string) (*dlsseProc, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{
		"-listen", addr,
		"-upstream-url", upstreamURL,
		"-log-level", "warn",
		"-max-streams", "10000000",
		"-max-streams-per-ip", "10000000",
		"-max-streams-per-conversation", strconv.Itoa(streamsPerConversation),
		"-requests-per-ip", "10000000",
	}
	args = append(args, extra...) // later flags win
	c, err := startChild("dlsse", bin, args, filepath.Join(logDir, "dlsse.log"), nil)
	if err != nil {
		return nil, err
	}
	d := &dlsseProc{child: c, Addr: addr, URL: "http://" + addr}
	if err := waitHealthy(ctx, d); err != nil {
		c.stop(time.Second)
		return nil, err
	}
	return d, nil
}

// freePort picks a loopback port that is free now. Another process could
// take it before dlsse binds it; dlsse then fails to start and says so.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitHealthy polls /healthz (a process start has no other signal to wait
// on) until it answers 200, the process exits, or 20 s pass.
func waitHealthy(ctx context.Context, d *dlsseProc) error {
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
		case <-d.exited:
			return fmt.Errorf("dlsse exited at start: %v (log: %s)", d.err, d.log.Name())
		case <-ctx.Done():
			return fmt.Errorf("dlsse not healthy: %w (log: %s)", ctx.Err(), d.log.Name())
		}
	}
}
