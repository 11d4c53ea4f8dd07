package upstream_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dlsse/dlsse/upstream"
)

// urlHostile are the substrings that would change what an upstream URL
// means (a new segment, a query, a fragment, an escape, a parameter, a
// header or request line break, a dot segment) or cannot be sent at all.
// A conversation id or a watermark holding any of them must be refused.
var urlHostile = []string{"/", "?", "#", "%", "&", "\r", "\n", "\x00", " ", ".."}

// FuzzConversationURL: whatever a client sends as a conversation id and a
// watermark, either the validators refuse it, or the URL Forward puts on
// the wire is exactly /v3/directline/conversations/<id>/activities, with
// the id as one plain segment that decodes back to it, and the query is
// exactly watermark=<wm>. The URL is observed where it lands: a recording
// server, one per fuzzing process.
func FuzzConversationURL(f *testing.F) {
	for _, s := range [][2]string{
		{"abc123", ""},
		{"5SmbWAnRyf2J3BN2mIzPeV-eu", "12"},
		{"Dx1.2:3|4_5-6", "abc|0000012"},
		{"a", "-1"},
		{strings.Repeat("z", upstream.MaxConversationIDLen), strings.Repeat("9", upstream.MaxWatermarkLen)},
		{strings.Repeat("z", upstream.MaxConversationIDLen+1), strings.Repeat("9", upstream.MaxWatermarkLen+1)},
		{"", "1"},
		{"a/b", "1/2"},
		{"a?b=c", "1?x"},
		{"a#b", "1#2"},
		{"a%2Fb", "%31"},
		{"%", "%zz"},
		{"a&b", "1&watermark=2"},
		{"a b", "1 2"},
		{"a+b", "1+2"},
		{"a;b", "1;2"},
		{"a\r\nHost: evil", "1\r\nX: y"},
		{"a\nb", "\n"},
		{"a\x00b", "\x00"},
		{"..", ".."},
		{".", "."},
		{"a..b", "1..2"},
		{"../..", "../"},
		{"é", "ü"},
		{"~", "~"},
		{"a=b", "="},
	} {
		f.Add(s[0], s[1])
	}

	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Escaped-Path", r.URL.EscapedPath())
		w.Header().Set("X-Raw-Query", r.URL.RawQuery)
		w.WriteHeader(http.StatusNoContent)
	}))
	f.Cleanup(rec.Close)
	c, err := upstream.New(upstream.Config{BaseURL: rec.URL})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, id, wm string) {
		validID, validWM := upstream.ValidConversationID(id), upstream.ValidWatermark(wm)
		for _, bad := range urlHostile {
			if validID && strings.Contains(id, bad) {
				t.Errorf("ValidConversationID(%q) = true, but it holds %q", id, bad)
			}
			if validWM && strings.Contains(wm, bad) {
				t.Errorf("ValidWatermark(%q) = true, but it holds %q", wm, bad)
			}
		}
		if validID && (id == "" || len(id) > upstream.MaxConversationIDLen) {
			t.Errorf("ValidConversationID accepts an id of %d bytes", len(id))
		}
		if validWM && len(wm) > upstream.MaxWatermarkLen {
			t.Errorf("ValidWatermark accepts a watermark of %d bytes", len(wm))
		}
		if !validID || !validWM {
			return
		}

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		query := "watermark=" + url.QueryEscape(wm)
		resp, err := c.Forward(ctx, http.MethodGet, upstream.ConversationPath(id)+"/activities", query, nil, nil)
		if err != nil {
			t.Fatalf("Forward(id %q, watermark %q): %v", id, wm, err)
		}
		resp.Body.Close()
		path, rawQuery := resp.Header.Get("X-Escaped-Path"), resp.Header.Get("X-Raw-Query")

		const prefix, suffix = "/v3/directline/conversations/", "/activities"
		seg, ok := strings.CutPrefix(path, prefix)
		if ok {
			seg, ok = strings.CutSuffix(seg, suffix)
		}
		if !ok {
			t.Fatalf("id %q: upstream path %q, want %s<id>%s", id, path, prefix, suffix)
		}
		if strings.Contains(seg, "/") || seg == "." || seg == ".." {
			t.Errorf("id %q: upstream path %q: the id is not one plain segment (%q)", id, path, seg)
		}
		if got, err := url.PathUnescape(seg); err != nil || got != id {
			t.Errorf("id %q: upstream path %q: the segment decodes to %q (%v)", id, path, got, err)
		}

		if rawQuery != query {
			t.Errorf("watermark %q: upstream query %q, want %q", wm, rawQuery, query)
		}
		values, err := url.ParseQuery(rawQuery)
		if err != nil || len(values) != 1 || !slices.Equal(values["watermark"], []string{wm}) {
			t.Errorf("watermark %q: upstream query %q decodes to %v (%v), want exactly watermark=%q", wm, rawQuery, values, err, wm)
		}
	})
}
