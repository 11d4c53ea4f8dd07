package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestSDKServed: the browser client library is served from the binary, as
// a JavaScript module a page can import.
func TestSDKServed(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	resp, err := http.Get(h.URL + "/sdk/dlsse.js")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Errorf("Cache-Control %q", cc)
	}
	for _, want := range []string{"export function createDirectLine(", "export class DirectLineSSE"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body does not contain %q", want)
		}
	}
}
