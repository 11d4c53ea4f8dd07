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
		ran <- run(ctx, []string{"-demo", "-listen", addr, "-log-level", "debug"}, fakeEnv(nil), &stdout, &stderr)
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
		{"unknown flag", []string{"-no-such-flag"}, nil, "no-such-flag"},
		{"bad log level", []string{"-log-level", "loud"}, nil, "log_level"},
		{"bad log format from env", nil, map[string]string{"DLSSE_LOG_FORMAT": "xml"}, "log_format"},
		{"missing config file", []string{"-config", "/nonexistent/dlsse.yaml"}, nil, "config file"},
		{"bad upstream URL", []string{"-upstream-url", "ftp://x", "-listen", "127.0.0.1:0"}, nil, "base URL"},
		{"address in use", []string{"-listen", busy.Addr().String()}, nil, "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			var stdout, stderr syncBuffer
			err := run(ctx, tt.args, fakeEnv(tt.env), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run: %v, want an error mentioning %q", err, tt.wantErr)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("run waited for its context: %v", err)
			}
		})
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
		ran <- run(ctx, []string{"-listen", addr, "-upstream-url", "http://127.0.0.1:1"}, fakeEnv(nil), &stdout, &stderr)
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
