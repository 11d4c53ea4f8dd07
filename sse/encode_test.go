package sse

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestAppendEvent(t *testing.T) {
	cases := []struct {
		name, id, event, data, want string
	}{
		{"plain", "1", "activity", `{"a":1}`, "id: 1\nevent: activity\ndata: {\"a\":1}\n\n"},
		{"no id", "", "status", "x", "event: status\ndata: x\n\n"},
		{"multi-line data", "", "", "a\nb\r\nc\rd", "data: a\ndata: b\ndata: c\ndata: d\n\n"},
		{"trailing newline", "", "", "a\n", "data: a\ndata: \n\n"},
		{"empty data", "", "", "", "data: \n\n"},
		{"injection in id", "1\n\nevent: evil", "", "x", "id: 1event: evil\ndata: x\n\n"},
		{"injection in name", "", "a\rdata: evil", "x", "event: adata: evil\ndata: x\n\n"},
		{"NUL dropped", "a\x00b", "", "c\x00d", "id: ab\ndata: cd\n\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(AppendEvent(nil, c.id, c.event, []byte(c.data))); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestCommentAndRetry(t *testing.T) {
	if got := string(AppendComment(nil, "ping\nevent: x")); got != ": pingevent: x\n\n" {
		t.Errorf("comment %q", got)
	}
	if got := string(AppendRetry(nil, 2500*time.Millisecond)); got != "retry: 2500\n\n" {
		t.Errorf("retry %q", got)
	}
}

// parsed is one event as a conforming client sees it.
type parsed struct{ id, event, data string }

// parse is the HTML standard's event stream interpretation, enough to
// check that encoded output always means what was encoded.
func parse(s string) (events []parsed, ok bool) {
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur parsed
	var data []string
	has := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if has {
				cur.data = strings.Join(data, "\n")
				events = append(events, cur)
			}
			cur, data, has = parsed{}, nil, false
			continue
		}
		f, v, _ := strings.Cut(line, ":")
		v = strings.TrimPrefix(v, " ")
		switch f {
		case "id":
			cur.id = v
		case "event":
			cur.event = v
		case "data":
			data = append(data, v)
			has = true
		case "":
		default:
			return nil, false // a field the encoder never writes
		}
	}
	return events, strings.HasSuffix(s, "\n\n")
}

func FuzzEventFraming(f *testing.F) {
	f.Add("1~abc", "activity", `{"text":"hi"}`)
	f.Add("", "status", "a\r\nb\rc\nd")
	f.Add("x\n\ndata: evil", "e\rvent", "\x00\n\n")
	f.Add(" lead", " sp", " data")
	f.Fuzz(func(t *testing.T, id, name, data string) {
		out := string(AppendEvent(nil, id, name, []byte(data)))
		evs, ok := parse(out)
		if !ok || len(evs) != 1 {
			t.Fatalf("%q encodes to %d events (framing ok=%v): %q", data, len(evs), ok, out)
		}
		clean := func(s string) string {
			return strings.NewReplacer("\r", "", "\n", "", "\x00", "").Replace(s)
		}
		wantData := strings.NewReplacer("\r\n", "\n", "\r", "\n", "\x00", "").Replace(data)
		ev := evs[0]
		if id != "" && ev.id != strings.TrimPrefix(clean(id), "") {
			// The parser strips one leading space after the colon; the
			// encoder writes exactly one, so the value survives whole.
			t.Fatalf("id %q came back %q", clean(id), ev.id)
		}
		if name != "" && ev.event != clean(name) {
			t.Fatalf("event %q came back %q", clean(name), ev.event)
		}
		if ev.data != wantData {
			t.Fatalf("data %q came back %q", wantData, ev.data)
		}
	})
}

func TestLineEnd(t *testing.T) {
	for _, s := range []string{"", "a", "\n", "\r", "\r\n", "\n\r", "ab\ncd\ref", "ab\rcd\nef", strings.Repeat("x", 100) + "\r", strings.Repeat("y", 70) + "\n\r"} {
		if got, want := lineEnd([]byte(s)), bytes.IndexAny([]byte(s), "\r\n"); got != want {
			t.Errorf("lineEnd(%q) = %d, want %d", s, got, want)
		}
	}
}
