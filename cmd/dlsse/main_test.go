package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dlsse/dlsse/upstream/directlinetest"
)

const testTimeout = 15 * time.Second

// syncBuffer is a bytes.Buffer that run's goroutines and the test can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr returns a loopback address nobody listens on (for the moment).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// helpCommand matches the first command of the printed demo help: where to
// start a conversation and with which secret.
var helpCommand = regexp.MustCompile(`curl -s -X POST (\S+)/v3/directline/conversations -H 'Authorization: Bearer ([^']+)'`)

// TestDemoSmoke runs dlsse -demo and follows its printed instructions: start
// a conversation, open the stream, say hello, read "echo: hello". Then it
// stops dlsse and checks that no credential reached the log.
func TestDemoSmoke(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	ran := make(chan error, 1)
	go func() {
		ran <- run(ctx, []string{"-demo", "-listen", addr, "-log-level", "debug"}, nil, &stdout, &stderr)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-ran:
			if err != nil {
				t.Errorf("run returned %v, want nil", err)
			}
		case <-time.After(testTimeout):
			t.Fatal("run did not return after its context ended")
		}
	}
	defer func() {
		stop()
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	}()

	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer client.CloseIdleConnections()
	base := "http://" + addr

	// Wait for the gateway.
	deadline := time.Now().Add(testTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-ran:
			t.Fatalf("run ended before serving: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /healthz within %v", testTimeout)
		}
		<-tick.C
	}

	// The help is printed before serving starts, so it is complete now.
	help := stdout.String()
	m := helpCommand.FindStringSubmatch(help)
	if m == nil {
		t.Fatalf("no start command in the help:\n%s", help)
	}
	helpBase, secret := m[1], m[2]
	if helpBase != base {
		t.Errorf("the help points at %s, want %s", helpBase, base)
	}
	if secret != directlinetest.DefaultSecret || !strings.Contains(help, secret) {
		t.Errorf("the help's secret %q is not the demo's", secret)
	}

	reqCtx, reqCancel := context.WithTimeout(context.Background(), testTimeout)
	defer reqCancel()
	do := func(method, url, body string) (int, []byte) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(reqCtx, method, url, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+secret)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	status, body := do(http.MethodPost, helpBase+"/v3/directline/conversations", "")
	if status != http.StatusCreated {
		t.Fatalf("start: %d %s", status, body)
	}
	var conv struct {
		ConversationID string `json:"conversationId"`
		Token          string `json:"token"`
		StreamURL      string `json:"streamUrl"`
	}
	if err := json.Unmarshal(body, &conv); err != nil {
		t.Fatal(err)
	}
	streamURL, err := url.Parse(conv.StreamURL)
	if err != nil || conv.ConversationID == "" || conv.Token == "" {
		t.Fatalf("start answered %s", body)
	}
	tValue := streamURL.Query().Get("t")
	if streamURL.Host != addr || tValue == "" {
		t.Fatalf("streamUrl %s does not point at dlsse with a t=", conv.StreamURL)
	}

	// Open the stream with a plain GET and read its lines.
	streamCtx, streamCancel := context.WithCancel(reqCtx)
	defer streamCancel()
	req, err := http.NewRequestWithContext(streamCtx, http.MethodGet, conv.StreamURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-streamCtx.Done():
				return
			}
		}
	}()
	defer func() {
		streamCancel()
		<-readDone
	}()

	status, body = do(http.MethodPost, helpBase+"/v3/directline/conversations/"+conv.ConversationID+"/activities",
		`{"type":"message","from":{"id":"user1"},"text":"hello"}`)
	if status != http.StatusOK {
		t.Fatalf("post: %d %s", status, body)
	}

	var seen []string
	for echoed := false; !echoed; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the stream ended before the echo; it said:\n%s", strings.Join(seen, "\n"))
			}
			seen = append(seen, line)
			data, isData := strings.CutPrefix(line, "data:")
			if !isData {
				continue
			}
			var a struct{ Type, Text string }
			if json.Unmarshal([]byte(strings.TrimSpace(data)), &a) == nil && a.Type == "message" && a.Text == "echo: hello" {
				echoed = true
			}
		case <-reqCtx.Done():
			t.Fatalf("no echo within %v; the stream said:\n%s", testTimeout, strings.Join(seen, "\n"))
		}
	}

	stop()

	logs := stderr.String()
	if !strings.Contains(logs, "dlsse serving") || !strings.Contains(logs, `"level":"debug"`) {
		t.Fatalf("the log was not captured at debug level:\n%s", logs)
	}
	for what, secretValue := range map[string]string{
		"the Direct Line secret": secret,
		"the conversation token": conv.Token,
		"the stream URL's t=":    tValue,
	} {
		if strings.Contains(logs, secretValue) {
			t.Errorf("the log contains %s", what)
		}
	}
	if strings.Contains(logs, "t=") {
		t.Errorf("the log contains a URL query with t=")
	}
}

// TestRunRefusesBadConfiguration: run fails, without serving, on anything
// wrong before the listener is up.
func TestRunRefusesBadConfiguration(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"unknown flag", []string{"-no-such-flag"}, nil, "unknown flag -no-such-flag (dlsse -h lists the flags)"},
		{"mistyped flag", []string{"-listn", ":1"}, nil, "unknown flag -listn (did you mean -listen?)"},
		{"a word instead of -version", []string{"version"}, nil, `unexpected argument "version": did you mean -version?`},
		{"a word instead of -h", []string{"help"}, nil, `unexpected argument "help": did you mean -h?`},
		{"a stray word", []string{"-listen", "127.0.0.1:0", "serve"}, nil, `unexpected argument "serve": dlsse takes flags, and one command: healthcheck (dlsse -h)`},
		{"a value after a bool flag", []string{"-demo-pages", "true"}, nil, `unexpected argument "true": a bool flag takes no separate value (write -demo-pages, or -demo-pages=true)`},
		{"a flag without its value", []string{"-listen"}, nil, "flag needs an argument: -listen (dlsse -h lists the flags)"},
		{"bad log level", []string{"-log-level", "loud"}, nil, `flag -log-level: "loud" is not a log level`},
		{"bad log format from env", nil, map[string]string{"DLSSE_LOG_FORMAT": "xml"}, `DLSSE_LOG_FORMAT: "xml" is not a log format`},
		{"missing config file", []string{"-config", "/nonexistent/dlsse.yaml"}, nil, "config: /nonexistent/dlsse.yaml: no such file or directory"},
		{"bad upstream URL", []string{"-upstream-url", "ftp://x", "-listen", "127.0.0.1:0"}, nil, "base URL"},
		{"address in use", []string{"-listen", busy.Addr().String()}, nil, "address already in use"},
		{"redis URL without its scheme", []string{"-redis-url", "localhost:6379"}, nil, "flag -redis-url: must start with redis:// or rediss://"},
		{"lease too short", nil, map[string]string{"DLSSE_LEASE_TTL": "1s"}, "DLSSE_LEASE_TTL: must be at least 3s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			var stdout, stderr syncBuffer
			err := run(ctx, tt.args, tt.env, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run: %v, want an error mentioning %q", err, tt.wantErr)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("run waited for its context: %v", err)
			}
			if strings.Contains(stderr.String(), "dlsse serving") {
				t.Errorf("run served:\n%s", stderr.String())
			}
		})
	}
}

// TestVersionFlag: -version prints the version and serves nothing.
func TestVersionFlag(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var stdout, stderr syncBuffer
	if err := run(ctx, []string{"-version", "-listen", "127.0.0.1:0"}, nil, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if got, want := stdout.String(), "dlsse "+version()+"\n"; got != want {
		t.Errorf("-version printed %q, want %q", got, want)
	}
	if stderr.String() != "" {
		t.Errorf("-version logged %q", stderr.String())
	}
}

// runOnce runs dlsse with a context that has already ended: it starts (the
// listener, the startup log, -demo's help) and shuts down at once.
func runOnce(t *testing.T, args []string, env map[string]string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut syncBuffer
	err = run(ctx, args, env, &out, &errOut)
	return out.String(), errOut.String(), err
}

// logEntry finds the JSON log line whose message starts with prefix.
func logEntry(log, prefix string) (map[string]any, bool) {
	for line := range strings.Lines(log) {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil {
			if m, _ := e["message"].(string); strings.HasPrefix(m, prefix) {
				return e, true
			}
		}
	}
	return nil, false
}

// servingAddr is the address of the startup log line.
func servingAddr(log string) string {
	e, _ := logEntry(log, "dlsse serving")
	s, _ := e["listen"].(string)
	return s
}

// demoWarning starts the warning for -demo beyond loopback.
const demoWarning = "-demo listens beyond this machine"

// TestDemoListensOnLoopback: -demo listens on 127.0.0.1:8080 unless some
// source set listen, says so in its help, and warns when it listens beyond
// the machine.
func TestDemoListensOnLoopback(t *testing.T) {
	t.Run("by default", func(t *testing.T) {
		stdout, stderr, err := runOnce(t, []string{"-demo"}, nil)
		// Port 8080 may be taken on this machine: then the error names the
		// address dlsse tried.
		if err != nil {
			if !strings.Contains(err.Error(), demoListen) {
				t.Fatalf("run: %v, want it to listen on %s", err, demoListen)
			}
			return
		}
		if got := servingAddr(stderr); got != demoListen {
			t.Fatalf("listened on %q, want %s; log:\n%s", got, demoListen, stderr)
		}
		if !strings.Contains(stdout, "Listening on 127.0.0.1:8080: this machine only") {
			t.Errorf("the demo help does not say where it listens:\n%s", stdout)
		}
		if _, warned := logEntry(stderr, demoWarning); warned {
			t.Errorf("warned on loopback:\n%s", stderr)
		}
	})
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		file string
	}{
		{"listen from a flag", []string{"-listen", "127.0.0.2:0"}, nil, ""},
		{"listen from the environment", nil, map[string]string{"DLSSE_LISTEN": "127.0.0.2:0"}, ""},
		{"listen from the file", nil, nil, "listen: 127.0.0.2:0\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-demo"}, tt.args...)
			if tt.file != "" {
				args = append(args, "-config", writeConfig(t, tt.file))
			}
			stdout, stderr, err := runOnce(t, args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if got := servingAddr(stderr); !strings.HasPrefix(got, "127.0.0.2:") {
				t.Fatalf("listened on %q, want 127.0.0.2; log:\n%s", got, stderr)
			}
			if !strings.Contains(stdout, "this machine only") {
				t.Errorf("the demo help does not say it is local:\n%s", stdout)
			}
		})
	}
	t.Run("every interface, explicitly", func(t *testing.T) {
		stdout, stderr, err := runOnce(t, []string{"-demo", "-listen", ":0"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := logEntry(stderr, demoWarning); !ok || e["level"] != "warn" || e["listen"] != ":0" {
			t.Errorf("no warning for -demo on every interface; log:\n%s", stderr)
		}
		if !strings.Contains(stdout, "reachable from the network, token-server mode included") {
			t.Errorf("the demo help does not say it is exposed:\n%s", stdout)
		}
	})
}

// TestRunLogsWarningsAndVersion: the startup line carries the version; an
// unknown DLSSE_* variable is a warning, not a failure.
func TestRunLogsWarningsAndVersion(t *testing.T) {
	_, stderr, err := runOnce(t, []string{"-listen", "127.0.0.1:0"}, map[string]string{"DLSSE_HEARTBEET": "5s"})
	if err != nil {
		t.Fatal(err)
	}
	const warning = "DLSSE_HEARTBEET is not a dlsse setting and is ignored (did you mean DLSSE_HEARTBEAT?)"
	if e, ok := logEntry(stderr, warning); !ok || e["level"] != "warn" {
		t.Errorf("no warning for DLSSE_HEARTBEET; log:\n%s", stderr)
	}
	if e, _ := logEntry(stderr, "dlsse serving"); e["version"] != version() {
		t.Errorf("the startup line does not carry the version %q; log:\n%s", version(), stderr)
	}
}

// TestRunStopsOnCancel: without -demo, run serves until its context ends
// and then returns nil.
func TestRunStopsOnCancel(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	ran := make(chan error, 1)
	go func() {
		ran <- run(ctx, []string{"-listen", addr, "-upstream-url", "http://127.0.0.1:1"}, nil, &stdout, &stderr)
	}()
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(testTimeout)
	for {
		resp, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		select {
		case err := <-ran:
			t.Fatalf("run ended: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if stdout.String() != "" {
		t.Errorf("without -demo nothing is printed, got %q", stdout.String())
	}
	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("run did not return")
	}
	// The port is free again.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the listener was not closed: %v", err)
	}
	ln.Close()
}
