package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// failureLine is a logged upstream failure.
type failureLine struct {
	Level, Message, Operation, Upstream, Error string
	Unlogged                                   int64 `json:"unlogged_since_last"`
}

// failureLines are the upstream failure warnings in a JSON log.
func failureLines(t *testing.T, log string) []failureLine {
	t.Helper()
	var lines []failureLine
	for line := range strings.Lines(log) {
		var l failureLine
		if json.Unmarshal([]byte(line), &l) == nil && strings.HasPrefix(l.Message, "Direct Line call failed") {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestFailureWarnerLogsEachCauseOnce: a thousand calls refused by the same
// address are one warning, whatever their operations; another cause is
// another warning; a cause that lasts is logged again a minute later with
// how many failures went unlogged.
func TestFailureWarnerLogsEachCauseOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { // fake time: the sleep moves the clock
		var buf bytes.Buffer
		w := newFailureWarner(zerolog.New(&buf))
		refused := errors.New("connection refused")
		for i := range 1000 {
			w.note([]string{"start", "reconnect", "dial"}[i%3], "10.0.0.1:443", refused)
		}
		w.note("dial", "10.0.0.1:443", errors.New("timeout"))
		w.note("start", "10.0.0.2:443", refused)
		time.Sleep(failureLogEvery)
		w.note("reconnect", "10.0.0.1:443", refused)

		got := failureLines(t, buf.String())
		want := []failureLine{
			{"warn", "", "start", "10.0.0.1:443", "connection refused", 0},
			{"warn", "", "dial", "10.0.0.1:443", "timeout", 0},
			{"warn", "", "start", "10.0.0.2:443", "connection refused", 0},
			{"warn", "", "reconnect", "10.0.0.1:443", "connection refused", 999},
		}
		if len(got) != len(want) {
			t.Fatalf("%d warnings, want %d:\n%s", len(got), len(want), buf.String())
		}
		for i := range want {
			got[i].Message = ""
			if got[i] != want[i] {
				t.Errorf("warning %d: %+v, want %+v", i, got[i], want[i])
			}
		}
	})
}

// TestWrongUpstreamIsDiagnosed: dlsse pointed at a closed port says so in
// its log, once, with the operation, the address and "connection
// refused", while clients get 502s; never a credential.
func TestWrongUpstreamIsDiagnosed(t *testing.T) {
	closed := freeAddr(t)
	base, stderr := runServing(t, "-upstream-url", "http://"+closed)
	const secret = "the-bots-secret-never-logged"
	for range 3 {
		resp, body := post(t, base+"/v3/directline/conversations", secret)
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, `"code":"UpstreamUnavailable"`) || resp.Header.Get("Retry-After") != "5" {
			t.Fatalf("start against a closed port: %d %s (Retry-After %q), want 502 UpstreamUnavailable, Retry-After 5",
				resp.StatusCode, body, resp.Header.Get("Retry-After"))
		}
	}
	lines := failureLines(t, stderr.String())
	if len(lines) != 1 {
		t.Fatalf("%d failure warnings for 3 refused starts, want 1; log:\n%s", len(lines), stderr.String())
	}
	if l := lines[0]; l.Level != "warn" || l.Operation != "start" || l.Upstream != closed || l.Error != "connection refused" {
		t.Errorf("warning %+v, want warn, start, %s, connection refused", l, closed)
	}
	if strings.Contains(stderr.String(), secret) {
		t.Errorf("the log holds the credential:\n%s", stderr.String())
	}
}

// TestFailedDialLogsNoStreamToken: Direct Line's stream URL carries a token
// (t=…); when its dial fails, the warning names the dial and its address,
// and the token appears nowhere in the log.
func TestFailedDialLogsNoStreamToken(t *testing.T) {
	closed := freeAddr(t)
	const streamToken = "stream-token-from-directline"
	streamURL := "ws://" + closed + "/v3/directline/conversations/conv1/stream?watermark=-&t=" + streamToken
	dl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v3/directline/conversations":
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"conversationId":"conv1","token":"conv-token","expires_in":1800,"streamUrl":"`+streamURL+`"}`)
		case r.URL.Path == "/v3/directline/conversations/conv1/activities":
			io.WriteString(w, `{"activities":[],"watermark":"0"}`)
		case r.URL.Path == "/v3/directline/conversations/conv1":
			io.WriteString(w, `{"conversationId":"conv1","streamUrl":"`+streamURL+`"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(dl.Close)
	base, stderr := runServing(t, "-upstream-url", dl.URL, "-log-level", "debug")
	if resp, body := post(t, base+"/v3/directline/conversations", "secret"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v3/directline/conversations/conv1/stream?t=conv-token", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	var dial *failureLine
	for deadline := time.Now().Add(testTimeout); dial == nil; {
		for _, l := range failureLines(t, stderr.String()) {
			if l.Operation == "dial" {
				dial = &l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no warning about the failed dial; log:\n%s", stderr.String())
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	if dial.Upstream != closed || dial.Error != "connection refused" {
		t.Errorf("dial warning %+v, want %s, connection refused", *dial, closed)
	}
	if strings.Contains(stderr.String(), streamToken) {
		t.Errorf("the log holds the stream URL's token:\n%s", stderr.String())
	}
}

// runServing runs dlsse on a free loopback port until the test ends and
// returns its base URL once /healthz answers, and its log.
func runServing(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	ran := make(chan error, 1)
	go func() { ran <- run(ctx, append([]string{"-listen", addr}, args...), nil, &stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	base := "http://" + addr
	for deadline := time.Now().Add(testTimeout); ; {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, &stderr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /healthz within %v; log:\n%s", testTimeout, stderr.String())
		}
		select {
		case err := <-ran:
			t.Fatalf("run ended before serving: %v; log:\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// post sends an empty POST with a bearer credential and returns the
// answer, its body read.
func post(t *testing.T, u, credential string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, nil)
	req.Header.Set("Authorization", "Bearer "+credential)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}
