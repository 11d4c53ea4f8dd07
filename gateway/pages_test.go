package gateway_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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

// TestDemoPagesOff: without DemoPages, the pages and their scripts are
// Direct Line-shaped 404s, and the library is still served.
func TestDemoPagesOff(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, path := range []string{"/", "/app.js", "/webchat", "/webchat/app.js", "/webchat/webchat.js", "/favicon.svg", "/favicon.ico"} {
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

// cspSources returns the sources a Content-Security-Policy allows for a
// directive, falling back to default-src as browsers do.
func cspSources(csp, directive string) []string {
	var fallback []string
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		switch {
		case len(f) == 0:
		case f[0] == directive:
			return f[1:]
		case f[0] == "default-src":
			fallback = f[1:]
		}
	}
	return fallback
}

var iconLink = regexp.MustCompile(`<link rel="icon" href="([^"]+)"[^>]*>`)

// TestDemoPagesFavicon: each page names its icon, on this origin (allowed
// by the page's img-src), and the icon is served, so a page load asks for
// nothing that answers 404 (without a <link rel=icon>, browsers ask for
// /favicon.ico, which is served too).
func TestDemoPagesFavicon(t *testing.T) {
	h := newHarness(t, harnessOptions{gateway: gateway.Config{DemoPages: true}})
	for _, page := range []string{"/", "/webchat"} {
		resp, body := get(t, h.URL+page)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", page, resp.StatusCode)
		}
		links := iconLink.FindAllStringSubmatch(body, -1)
		if len(links) != 1 {
			t.Errorf("%s: %d <link rel=\"icon\"> elements, want 1", page, len(links))
			continue
		}
		href := links[0][1]
		if !strings.HasPrefix(href, "/") || strings.HasPrefix(href, "//") {
			t.Errorf("%s: icon %q is not a path on this origin", page, href)
			continue
		}
		if img := cspSources(resp.Header.Get("Content-Security-Policy"), "img-src"); !slices.Contains(img, "'self'") {
			t.Errorf("%s: the page's CSP allows images from %q: not its own icon", page, img)
		}
		icon, svg := get(t, h.URL+href)
		if icon.StatusCode != http.StatusOK || icon.Header.Get("Content-Type") != "image/svg+xml" || !strings.HasPrefix(svg, "<svg ") {
			t.Errorf("%s: icon %s: %d %q %.40q", page, href, icon.StatusCode, icon.Header.Get("Content-Type"), svg)
		}
		if csp := icon.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("icon CSP %q: opened as a document, it should load and run nothing", csp)
		}
	}
	if resp, _ := get(t, h.URL+"/favicon.ico"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "image/") {
		t.Errorf("/favicon.ico: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestWebChatPageServesTheBundle: /webchat is Web Chat's page under its CSP
// (which lets the adapter read attachments from blob: URLs), and the bundle
// configured is served from memory, gzipped for clients that take it, with
// an ETag that answers 304.
func TestWebChatPageServesTheBundle(t *testing.T) {
	bundle := filepath.Join(t.TempDir(), "webchat.js")
	content := []byte("window.WebChat = {};" + strings.Repeat("/* padding */", 500))
	if err := os.WriteFile(bundle, content, 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{gateway: gateway.Config{DemoPages: true, WebChatBundle: bundle}})

	resp, body := get(t, h.URL+"/webchat")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<script src="/webchat/webchat.js" defer></script>`) ||
		!strings.Contains(body, `<script type="module" src="/webchat/app.js"></script>`) {
		t.Fatalf("page: %d %s", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' blob:") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q", csp)
	}
	if resp, js := get(t, h.URL+"/webchat/app.js"); resp.StatusCode != http.StatusOK || !strings.Contains(js, "createDirectLine") {
		t.Errorf("app.js: %d", resp.StatusCode)
	}

	// Plain (Go's client asks for gzip itself unless told not to).
	req, _ := http.NewRequest("GET", h.URL+"/webchat/webchat.js", nil)
	req.Header.Set("Accept-Encoding", "identity")
	plain, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(plain.Body)
	plain.Body.Close()
	etag := plain.Header.Get("ETag")
	if plain.StatusCode != http.StatusOK || !bytes.Equal(got, content) || etag == "" ||
		plain.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("bundle: %d, %d bytes, ETag %q, %q", plain.StatusCode, len(got), etag, plain.Header.Get("Content-Type"))
	}

	req.Header.Set("Accept-Encoding", "gzip")
	zipped, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zipped.Body)
	zipped.Body.Close()
	if zipped.Header.Get("Content-Encoding") != "gzip" || len(raw) >= len(content) {
		t.Fatalf("gzip: encoding %q, %d bytes for %d", zipped.Header.Get("Content-Encoding"), len(raw), len(content))
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, _ := io.ReadAll(zr)
	if !bytes.Equal(unzipped, content) {
		t.Fatal("gzipped bundle differs from the file")
	}

	req.Header.Set("If-None-Match", etag)
	cached, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cached.Body.Close()
	if cached.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: status %d, want 304", cached.StatusCode)
	}
}

// TestWebChatWithoutTheBundle: a missing bundle is no startup error; the
// page is served (its script explains) and the bundle's path answers a
// Direct Line-shaped 404 that names the fix.
func TestWebChatWithoutTheBundle(t *testing.T) {
	h := newHarness(t, harnessOptions{gateway: gateway.Config{DemoPages: true, WebChatBundle: filepath.Join(t.TempDir(), "absent.js")}})
	if resp, _ := get(t, h.URL+"/webchat"); resp.StatusCode != http.StatusOK {
		t.Errorf("page: %d", resp.StatusCode)
	}
	resp, body := get(t, h.URL+"/webchat/webchat.js")
	var e struct {
		Error struct{ Code, Message string }
	}
	if resp.StatusCode != http.StatusNotFound || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error.Message, "scripts/fetch-webchat") {
		t.Errorf("bundle: %d %s", resp.StatusCode, body)
	}
}

// TestWebChatBundleUnreadable: a bundle path that exists but cannot be read
// (here a directory) is a configuration error at start, not a 404 later.
func TestWebChatBundleUnreadable(t *testing.T) {
	if _, err := gateway.New(gateway.Config{DemoPages: true, WebChatBundle: t.TempDir()}, nil, nil); err == nil {
		t.Fatal("New accepted a directory as the Web Chat bundle")
	}
}
