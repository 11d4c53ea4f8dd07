package session

import (
	"fmt"
	"testing"
)

// appendSet appends activities with the given ids as one set ending at wm.
func appendSet(l *memLog, wm string, ids ...string) {
	base := l.Watermark()
	entries := make([]Entry, 0, len(ids))
	for _, id := range ids {
		entries = append(entries, Entry{Durable: true, Hash: IDHash(id), Base: base, Event: []byte(id)})
	}
	if len(entries) > 0 && wm != "" {
		entries[len(entries)-1].After = wm
	}
	l.Append(entries, wm)
}

func readAll(l *memLog, from uint64) (ids []string, fellOff bool) {
	_, fellOff = l.Read(from, func(e *Entry) bool { ids = append(ids, string(e.Event)); return true })
	return ids, fellOff
}

func TestLogLocate(t *testing.T) {
	l := newMemLog(100, "")
	appendSet(l, "2", "a", "b")
	appendSet(l, "3", "c")
	appendSet(l, "", "d") // a set without watermark
	appendSet(l, "5", "e")

	cases := []struct {
		cursor Cursor
		want   string
	}{
		{CursorFor("", "a"), "b c d e"},
		{CursorFor("", "b"), "c d e"},
		{CursorFor("2", "c"), "d e"},
		{CursorFor("3", "d"), "e"},
		{CursorFor("3", "e"), ""},
		{Cursor{Base: "2"}, "c d e"},
		{Cursor{Base: "3"}, "d e"},
		{Cursor{Base: "5"}, ""},
	}
	for _, c := range cases {
		seq, ok := l.Locate(c.cursor)
		if !ok {
			t.Errorf("Locate(%v) missed", c.cursor)
			continue
		}
		ids, _ := readAll(l, seq)
		if got := fmt.Sprint(ids); got != fmt.Sprint(splitOrNil(c.want)) {
			t.Errorf("after %v: %v, want %v", c.cursor, got, c.want)
		}
	}
	if _, ok := l.Locate(CursorFor("5", "zz")); ok {
		t.Errorf("unknown activity located")
	}
	if _, ok := l.Locate(Cursor{Base: "99"}); ok {
		t.Errorf("unknown watermark located")
	}
}

func splitOrNil(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, f := range []rune(s) {
		if f != ' ' {
			out = append(out, string(f))
		}
	}
	return out
}

func TestLogEvictionKeepsWindowAndStart(t *testing.T) {
	l := newMemLog(3, "10")
	for i := 0; i < 5; i++ {
		appendSet(l, fmt.Sprint(11+i), fmt.Sprint(i))
	}
	if _, fellOff := l.Read(1, func(*Entry) bool { return true }); !fellOff {
		t.Errorf("reading an evicted position did not report falling off")
	}
	if l.Contains(IDHash("0")) || !l.Contains(IDHash("4")) {
		t.Errorf("hash index not trimmed with the ring")
	}
	seq, ok := l.Locate(Cursor{Base: "12"}) // just before the oldest kept
	if !ok {
		t.Fatalf("start watermark not located")
	}
	if ids, _ := readAll(l, seq); fmt.Sprint(ids) != "[2 3 4]" {
		t.Errorf("from start: %v", ids)
	}
	if _, ok := l.Locate(Cursor{Base: "11"}); ok {
		t.Errorf("evicted watermark located")
	}
}

func TestLogAnchor(t *testing.T) {
	l := newMemLog(100, "0")
	appendSet(l, "3", "a", "b", "c")
	if _, ok := l.Anchor("5", IDHash("e"), true); ok {
		t.Errorf("anchored ahead of the log")
	}
	seq, ok := l.Anchor("2", IDHash("b"), true) // a poll that ended mid-set
	if ids, _ := readAll(l, seq); !ok || fmt.Sprint(ids) != "[c]" {
		t.Errorf("anchor by id: %v %v", ids, ok)
	}
	seq, ok = l.Anchor("3", 0, false) // an empty poll at the head
	if ids, _ := readAll(l, seq); !ok || len(ids) != 0 {
		t.Errorf("anchor at head: %v %v", ids, ok)
	}
	appendSet(l, "4", "d")
	seq, ok = l.Anchor("3", 0, false) // the log moved on meanwhile
	if ids, _ := readAll(l, seq); !ok || fmt.Sprint(ids) != "[d]" {
		t.Errorf("anchor by watermark: %v %v", ids, ok)
	}
}

// A log that starts empty and learns the conversation's watermark from a
// poll (Append with no entries) must still place that watermark, before
// and after the next set arrives.
func TestLogWatermarkLearnedWhileEmpty(t *testing.T) {
	l := newMemLog(100, "")
	l.Append(nil, "5")
	if seq, ok := l.Anchor("5", 0, false); !ok || seq != 1 {
		t.Errorf("empty log at 5: Anchor = %d %v", seq, ok)
	}
	appendSet(l, "6", "x")
	seq, ok := l.Anchor("5", 0, false)
	if ids, _ := readAll(l, seq); !ok || fmt.Sprint(ids) != "[x]" {
		t.Errorf("after a set: Anchor(5) read %v %v", ids, ok)
	}
	if seq, ok := l.Locate(Cursor{Base: "5"}); !ok || seq != 1 {
		t.Errorf("Locate(5) = %d %v", seq, ok)
	}
}

// Sets without a watermark leave the watermark where it was; a resume from
// that watermark must still get their activities.
func TestLogWatermarkDoesNotSkipSetsWithoutOne(t *testing.T) {
	l := newMemLog(100, "")
	appendSet(l, "1", "a")
	appendSet(l, "", "b")
	seq, ok := l.Locate(Cursor{Base: "1"})
	if ids, _ := readAll(l, seq); !ok || fmt.Sprint(ids) != "[b]" {
		t.Errorf("after watermark 1: %v %v, want [b]", ids, ok)
	}
}
