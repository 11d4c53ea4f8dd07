package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

const wantCSP = "default-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'"

// get fetches a path from the gateway and returns the response and body.
func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
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

// TestDemoPageServed: with DemoPages, / is the plain page under a strict
// CSP, loading the client library and its own module script (no inline
// script), with the ids browser tests rely on.
func TestDemoPageServed(t *testing.T) {
	h := newHarness(t, harnessOptions{gateway: gateway.Config{DemoPages: true}})
	resp, body := get(t, h.URL+"/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); csp != wantCSP {
		t.Errorf("Content-Security-Policy %q, want %q", csp, wantCSP)
	}
	for _, want := range []string{
		`<script type="module" src="/app.js"></script>`,
		`id="messages"`, `id="input"`, `id="send"`, `id="status"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page does not contain %q", want)
		}
	}
	// Every <script> has a src: the CSP allows no inline script.
	if n, m := strings.Count(body, "<script"), strings.Count(body, "<script type=\"module\" src="); n != m {
		t.Errorf("%d <script> tags, %d of them external modules", n, m)
	}

	resp, js := get(t, h.URL+"/app.js")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("app.js: status %d: %s", resp.StatusCode, js)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("app.js Content-Type %q", ct)
	}
	for _, want := range []string{
		"from '/sdk/dlsse.js'",
		"/v3/directline/tokens/generate",
		"connectionStatus$", "dlsseStatus$", "textContent",
	} {
		if !strings.Contains(js, want) {
			t.Errorf("app.js does not contain %q", want)
		}
	}
	if strings.Contains(js, "innerHTML") {
		t.Error("app.js uses innerHTML")
	}
}

// TestDemoPageTokenServer: the page's first call, a token from the
// gateway's token-server mode, works from the page's own origin.
func TestDemoPageTokenServer(t *testing.T) {
	fake := directlinetest.NewServer()
	t.Cleanup(fake.Close)
	h := newHarnessWithFake(t, fake, harnessOptions{gateway: gateway.Config{
		DemoPages: true, DirectLineSecret: fake.Secret(), TokenOrigins: []string{"*"},
	}})
	req, err := http.NewRequest(http.MethodPost, h.URL+"/v3/directline/tokens/generate", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", h.URL)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.Token == "" {
		t.Fatalf("token: status %d, %+v, %v", resp.StatusCode, tok, err)
	}
}

// TestDemoPagesOff: without DemoPages, / and /app.js are Direct Line-shaped
// 404s, and the library is still served.
func TestDemoPagesOff(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, path := range []string{"/", "/app.js"} {
		resp, body := get(t, h.URL+path)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", path, resp.StatusCode)
			continue
		}
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code == "" {
			t.Errorf("%s: body %q is not Direct Line's error shape (%v)", path, body, err)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); csp != "" {
			t.Errorf("%s: CSP %q on a 404", path, csp)
		}
	}
	if resp, _ := get(t, h.URL+"/sdk/dlsse.js"); resp.StatusCode != http.StatusOK {
		t.Errorf("/sdk/dlsse.js: status %d", resp.StatusCode)
	}
}
