package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"

	"github.com/dlsse/dlsse/gateway"
)

// corsCall is one cross-origin call of a browser client, described the way
// the browser's preflight announces it.
type corsCall struct {
	name   string
	method string
	path   string // {id}: the conversation
	// requestHeaders is the Access-Control-Request-Headers a browser sends:
	// the names of the headers the script set that are not CORS-safelisted
	// (Accept: application/json is; so is the multipart/form-data
	// Content-Type that the browser sets itself for a FormData body), lower
	// case, sorted, comma-separated.
	requestHeaders string
	// credentials: the call is made withCredentials (cookies), so "*" in an
	// answer does not do.
	credentials bool
}

// directLineJSCalls are the calls of DirectLineJS 0.15.x (what Web Chat's
// createDirectLine runs; Web Chat 4.18.1 bundles 0.15.5) in src/directLine.ts,
// every one with Authorization and x-ms-bot-agent (commonHeaders), and
// X-Requested-With: XMLHttpRequest, which its HTTP layer, rxjs 5's ajax,
// adds to every call not marked crossDomain (DirectLineJS marks none).
// test/directlinejs records what the real package sends and checks it
// against dlsse the same way.
var directLineJSCalls = []corsCall{
	// startConversation without a conversationId: Accept, Content-Type: application/json.
	{name: "start", method: "POST", path: "/v3/directline/conversations",
		requestHeaders: "authorization,content-type,x-ms-bot-agent,x-requested-with"},
	// startConversation given a conversationId: the same headers, on a GET.
	{name: "rejoin", method: "GET", path: "/v3/directline/conversations/{id}?watermark=",
		requestHeaders: "authorization,content-type,x-ms-bot-agent,x-requested-with"},
	// reconnectToConversation, after a WebSocket closed: Accept only.
	{name: "reconnect", method: "GET", path: "/v3/directline/conversations/{id}?watermark=",
		requestHeaders: "authorization,x-ms-bot-agent,x-requested-with"},
	{name: "refresh", method: "POST", path: "/v3/directline/tokens/refresh",
		requestHeaders: "authorization,x-ms-bot-agent,x-requested-with"},
	{name: "post", method: "POST", path: "/v3/directline/conversations/{id}/activities",
		requestHeaders: "authorization,content-type,x-ms-bot-agent,x-requested-with"},
	// pollingGetActivity$ (webSocket: false): Accept only.
	{name: "poll", method: "GET", path: "/v3/directline/conversations/{id}/activities?watermark=",
		requestHeaders: "authorization,x-ms-bot-agent,x-requested-with"},
	// postMessageWithAttachments: a FormData body, so no Content-Type of its own.
	{name: "upload", method: "POST", path: "/v3/directline/conversations/{id}/upload?userId=user1",
		requestHeaders: "authorization,x-ms-bot-agent,x-requested-with"},
	// getSessionId (Web Chat's OAuth sign-in cards): withCredentials. dlsse
	// has no such route: the preflight passes and the call gets a readable
	// 404, which DirectLineJS turns into "no session id" (magic code).
	{name: "getsessionid", method: "GET", path: "/v3/directline/session/getsessionid",
		requestHeaders: "authorization,content-type,x-ms-bot-agent,x-requested-with", credentials: true},
}

// otherStreamCalls are calls not made by DirectLineJS: dlsse's client library
// sends Authorization and Content-Type only (and its EventSource and stream
// probe need no preflight); a fetch-based SSE client resumes with headers.
var otherStreamCalls = []corsCall{
	{name: "dlsse.js post", method: "POST", path: "/v3/directline/conversations/{id}/activities",
		requestHeaders: "authorization,content-type"},
	{name: "fetch-based stream", method: "GET", path: "/v3/directline/conversations/{id}/stream",
		requestHeaders: "authorization,cache-control,last-event-id"},
}

// corsList splits a header's comma-separated list, trimmed.
func corsList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// corsCheck is a browser's CORS check of an answer (Fetch standard, "CORS
// check"): nil when the page may read it.
func corsCheck(h http.Header, origin string, credentials bool) error {
	acao := h.Values("Access-Control-Allow-Origin")
	if len(acao) != 1 {
		return fmt.Errorf("Access-Control-Allow-Origin %q, want one value", acao)
	}
	if acao[0] == "*" && !credentials {
		return nil
	}
	if acao[0] != origin {
		return fmt.Errorf("Access-Control-Allow-Origin %q for origin %q (credentials %v)", acao[0], origin, credentials)
	}
	if credentials && h.Get("Access-Control-Allow-Credentials") != "true" {
		return fmt.Errorf("Access-Control-Allow-Credentials %q with credentials", h.Get("Access-Control-Allow-Credentials"))
	}
	return nil
}

// preflightVerdict is a browser's judgement of a preflight's answer (Fetch
// standard, "CORS-preflight fetch"): nil when it goes on with the call.
func preflightVerdict(status int, h http.Header, origin string, c corsCall) error {
	if status < 200 || status > 299 {
		return fmt.Errorf("preflight status %d", status)
	}
	if err := corsCheck(h, origin, c.credentials); err != nil {
		return err
	}
	methods := corsList(h.Get("Access-Control-Allow-Methods"))
	safelisted := c.method == http.MethodGet || c.method == http.MethodHead || c.method == http.MethodPost
	if !safelisted && !slices.Contains(methods, c.method) && (c.credentials || !slices.Contains(methods, "*")) {
		return fmt.Errorf("method %s not in Access-Control-Allow-Methods %q", c.method, methods)
	}
	var allowed []string
	for _, a := range corsList(h.Get("Access-Control-Allow-Headers")) {
		allowed = append(allowed, strings.ToLower(a))
	}
	for _, name := range corsList(c.requestHeaders) {
		if slices.Contains(allowed, name) {
			continue
		}
		// "*" covers every name but Authorization, and only without credentials.
		if slices.Contains(allowed, "*") && !c.credentials && name != "authorization" {
			continue
		}
		return fmt.Errorf("request header %s not in Access-Control-Allow-Headers %q", name, allowed)
	}
	return nil
}

// preflight sends the OPTIONS request a browser sends before c from origin
// and returns the browser's verdict.
func (h *harness) preflight(c corsCall, conv, origin string) error {
	h.t.Helper()
	header := http.Header{
		"Origin":                        {origin},
		"Access-Control-Request-Method": {c.method},
	}
	if c.requestHeaders != "" {
		header.Set("Access-Control-Request-Headers", c.requestHeaders)
	}
	status, got, _ := h.secRequest(http.MethodOptions, strings.ReplaceAll(c.path, "{id}", conv), header, nil)
	return preflightVerdict(status, got, origin, c)
}

// TestCORSPreflightsOfDirectLineJS: a browser on a listed origin may make
// every call DirectLineJS and dlsse's clients make, with exactly the
// headers they send; a page on another origin may make none; with "*" any
// origin may, except calls with credentials.
func TestCORSPreflightsOfDirectLineJS(t *testing.T) {
	t.Parallel()
	const app, other = "https://webchat.example", "https://other.example"
	listed := newHarness(t, harnessOptions{gateway: gateway.Config{AllowedOrigins: []string{app}}})
	anyOrigin := newHarness(t, harnessOptions{gateway: gateway.Config{AllowedOrigins: []string{"*"}}})
	conv, _ := listed.fake.NewConversation()
	for _, c := range append(slices.Clone(directLineJSCalls), otherStreamCalls...) {
		t.Run(c.name, func(t *testing.T) {
			if err := listed.preflight(c, conv, app); err != nil {
				t.Errorf("%s %s from the listed origin: refused: %v", c.method, c.path, err)
			}
			if err := listed.preflight(c, conv, other); err == nil {
				t.Errorf("%s %s from an unlisted origin: allowed", c.method, c.path)
			}
			err := anyOrigin.preflight(c, conv, other)
			switch {
			case c.credentials && err == nil:
				t.Errorf("%s %s with credentials under \"*\": allowed", c.method, c.path)
			case !c.credentials && err != nil:
				t.Errorf("%s %s under \"*\": refused: %v", c.method, c.path, err)
			}
		})
	}
}

// TestCORSDirectLineJSCallsReadable: the calls themselves, made as
// DirectLineJS makes them from a listed origin, are answered and readable
// by the page (a refresh, a start, a rejoin, a post, a poll, an upload),
// and a 404 for the route dlsse does not have is readable too.
func TestCORSDirectLineJSCallsReadable(t *testing.T) {
	t.Parallel()
	const app = "https://webchat.example"
	h := newHarness(t, harnessOptions{gateway: gateway.Config{AllowedOrigins: []string{app}}})
	status, _, body := h.secRequest(http.MethodPost, "/v3/directline/tokens/generate",
		http.Header{"Authorization": {"Bearer " + h.fake.Secret()}}, nil)
	if status != http.StatusOK {
		t.Fatalf("generate (the site's token server, not a browser): %d %s", status, body)
	}
	var tok struct{ Token string }
	if err := json.Unmarshal(body, &tok); err != nil || tok.Token == "" {
		t.Fatalf("generate: %s: %v", body, err)
	}
	token := tok.Token

	// call makes c as DirectLineJS does (its headers, from the page's
	// origin) and checks the answer is readable by the page.
	call := func(c corsCall, conv string, contentType string, reqBody []byte, wantStatus int) []byte {
		t.Helper()
		header := http.Header{
			"Origin":           {app},
			"Authorization":    {"Bearer " + token},
			"X-Ms-Bot-Agent":   {"DirectLine/3.0 (directlinejs 0.15.8; WebChat/4.18.1 (Full))"},
			"X-Requested-With": {"XMLHttpRequest"},
			"Accept":           {"application/json"},
		}
		if contentType != "" {
			header.Set("Content-Type", contentType)
		}
		var r io.Reader
		if reqBody != nil {
			r = bytes.NewReader(reqBody)
		}
		status, got, body := h.secRequest(c.method, strings.ReplaceAll(c.path, "{id}", conv), header, r)
		if status != wantStatus {
			t.Errorf("%s: status %d %s, want %d", c.name, status, body, wantStatus)
		}
		if err := corsCheck(got, app, c.credentials); err != nil {
			t.Errorf("%s: the page cannot read the answer: %v", c.name, err)
		}
		return body
	}
	byName := func(name string) corsCall {
		for _, c := range directLineJSCalls {
			if c.name == name {
				return c
			}
		}
		t.Fatalf("no call %q", name)
		return corsCall{}
	}

	var started struct{ ConversationID, Token string }
	if err := json.Unmarshal(call(byName("start"), "", "application/json", []byte(`{"user":{}}`), http.StatusCreated), &started); err != nil || started.ConversationID == "" {
		t.Fatalf("start: %+v %v", started, err)
	}
	conv := started.ConversationID
	var refreshed struct{ Token string }
	if err := json.Unmarshal(call(byName("refresh"), conv, "", nil, http.StatusOK), &refreshed); err != nil || refreshed.Token == "" {
		t.Fatalf("refresh: %+v %v", refreshed, err)
	}
	token = refreshed.Token
	call(byName("rejoin"), conv, "application/json", nil, http.StatusOK)
	call(byName("reconnect"), conv, "", nil, http.StatusOK)
	call(byName("post"), conv, "application/json", []byte(`{"type":"message","from":{"id":"user1"},"text":"hi"}`), http.StatusOK)
	call(byName("poll"), conv, "", nil, http.StatusOK)

	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	part, _ := mw.CreatePart(textproto.MIMEHeader{
		"Content-Disposition": {`form-data; name="activity"; filename="blob"`},
		"Content-Type":        {"application/vnd.microsoft.activity"},
	})
	part.Write([]byte(`{"type":"message","from":{"id":"user1"},"text":"see attached"}`))
	file, _ := mw.CreateFormFile("file", "a.txt")
	file.Write([]byte("attached"))
	mw.Close()
	call(byName("upload"), conv, mw.FormDataContentType(), form.Bytes(), http.StatusOK)

	body = call(byName("getsessionid"), conv, "application/json", nil, http.StatusNotFound)
	if code, ok := secDLError(body); !ok || code == "" {
		t.Errorf("getsessionid: %s, want a Direct Line-shaped 404", body)
	}
}
