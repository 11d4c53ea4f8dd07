package session

import (
	"strings"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []Cursor{
		{Base: "42"},
		CursorFor("42", "conv|0000043"),
		CursorFor("", "conv|0000000"),
		{Base: "0000a-42", Hash: 0, HasHash: true},
		{Base: "7", Hash: ^uint64(0), HasHash: true},
	} {
		s := c.String()
		got, err := ParseCursor(s)
		if err != nil || got != c {
			t.Errorf("ParseCursor(%q) = %+v, %v; want %+v", s, got, err, c)
		}
	}
}

func TestParseCursorRejects(t *testing.T) {
	for _, s := range []string{
		"1~short",
		"1~AAAAAAAAAAAA",            // 12 chars
		"1~!!!!!!!!!!!",             // not base64url
		"a b",                       // space
		"1\n2",                      // newline
		"../../x",                   // path
		"1&watermark=2",             // query injection
		"1~AAAAAAAAAAA~AAAAAAAAAAA", // two separators
		strings.Repeat("9", MaxCursorLen+1),
	} {
		if _, err := ParseCursor(s); err == nil {
			t.Errorf("ParseCursor(%q) accepted", s)
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add("42")
	f.Add(CursorFor("42", "x|1").String())
	f.Add("~AAAAAAAAAAA")
	f.Add("1~\x00")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			return
		}
		// Whatever is accepted is safe to write into an id line and an
		// upstream query, and encodes back to the same text.
		if strings.ContainsAny(s, "\r\n\x00 &?#/%") {
			t.Fatalf("accepted unsafe cursor %q", s)
		}
		if c.String() != s {
			t.Fatalf("%q re-encodes as %q", s, c.String())
		}
	})
}
