package gateway_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/dlsse/dlsse/upstream"
)

// FuzzStreamRequest sends stream requests with arbitrary query strings,
// Authorization and Last-Event-ID headers over a real socket. Whatever
// they hold, the circuit breaker stays closed, the answer is never a
// server error, and input refused as malformed (400, 401) costs no
// upstream call.
//
//	go test -fuzz=FuzzStreamRequest ./gateway
func FuzzStreamRequest(f *testing.F) {
	up := newSecUpstream(f)
	h := newHarness(f, harnessOptions{upstream: upstream.Config{Transport: up}})
	conv := h.start()
	good := "t=" + conv.Token
	for _, seed := range []struct{ query, auth, cursor string }{
		{"t=%0A", "", ""},
		{"t=%0D%0A", "", ""},
		{"t=%00", "", ""},
		{"t=a%20b", "", ""},
		{"t=" + strings.Repeat("A", 5000), "", ""},
		{"", "Bearer \x01", ""},
		{"", "Bearer a\tb", ""},
		{"", "Basic Zm9v", ""},
		{good, "", "zzz"},
		{good, "", "1~AAAAAAAAAA="},
		{good + "&lastEventId=%0A", "", ""},
		{good + "&watermark=1%0D%0Ax", "", ""},
		{good + "&t=%0A", "", "~"},
		{"t=garbage", "", ""},
		{good, "", "~"},
	} {
		f.Add(seed.query, seed.auth, seed.cursor)
	}
	addr := strings.TrimPrefix(h.URL, "http://")
	path := "/v3/directline/conversations/" + conv.ConversationID + "/stream"
	f.Fuzz(func(t *testing.T, query, auth, cursor string) {
		if strings.ContainsAny(query, " \r\n#") || strings.ContainsAny(auth+cursor, "\r\n") {
			return // not one request line and one header line each
		}
		head := "GET " + path + "?" + query + " HTTP/1.1\r\nHost: fuzz\r\n"
		if auth != "" {
			head += "Authorization: " + auth + "\r\n"
		}
		if cursor != "" {
			head += "Last-Event-ID: " + cursor + "\r\n"
		}
		before := len(up.snapshot())
		status := fuzzStatus(t, addr, head+"\r\n")
		if status >= 500 {
			t.Errorf("%q: status %d", head, status)
		}
		if status == http.StatusBadRequest || status == http.StatusUnauthorized {
			if calls := up.snapshot()[before:]; len(calls) != 0 {
				t.Errorf("%q refused as %d after %d upstream calls", head, status, len(calls))
			}
		}
		if st := h.up.BreakerState(); st != gobreaker.StateClosed {
			t.Fatalf("%q: breaker %v", head, st)
		}
	})
}

// fuzzStatus sends a raw request and returns the answer's status, then
// hangs up (a stream that opened is not read).
func fuzzStatus(t *testing.T, addr, request string) int {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", request, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
