package upstream_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dlsse/dlsse/upstream"
)

// activitySetCases are decoding cases; their inputs also seed the fuzzer.
var activitySetCases = []struct {
	name      string
	in        string
	wantErr   bool
	count     int
	watermark string
}{
	{"string watermark", `{"activities":[{"id":"a"}],"watermark":"7"}`, false, 1, "7"},
	{"opaque string watermark", `{"activities":[],"watermark":"abc|0000012"}`, false, 0, "abc|0000012"},
	{"escaped string watermark", `{"activities":[],"watermark":"a\"b\u00e9"}`, false, 0, `a"bé`},
	{"empty string watermark", `{"activities":[],"watermark":""}`, false, 0, ""},
	{"number watermark", `{"activities":[{},{}],"watermark":12}`, false, 2, "12"},
	{"negative number watermark", `{"activities":[],"watermark":-3}`, false, 0, "-3"},
	{"float watermark kept verbatim", `{"activities":[],"watermark":1.5e3}`, false, 0, "1.5e3"},
	{"huge number watermark kept verbatim", `{"activities":[],"watermark":123456789012345678901234567890}`, false, 0, "123456789012345678901234567890"},
	{"null watermark", `{"activities":[{"type":"typing"}],"watermark":null}`, false, 1, ""},
	{"missing watermark", `{"activities":[{"type":"typing"}]}`, false, 1, ""},
	{"whitespace", " {\n\t\"watermark\" :  \"3\" ,\"activities\":[ {\"a\" : 1} ]\n} ", false, 1, "3"},
	{"unknown fields", `{"activities":[],"watermark":"1","future":{"x":[1,2]}}`, false, 0, "1"},
	{"null activities", `{"activities":null,"watermark":"2"}`, false, 0, "2"},
	{"no activities", `{"watermark":"2"}`, false, 0, "2"},
	{"activities of any JSON", `{"activities":[1,"two",null,true,[3]]}`, false, 5, ""},
	{"empty object", `{}`, false, 0, ""},
	{"null set", `null`, false, 0, ""},
	{"boolean watermark", `{"activities":[],"watermark":true}`, true, 0, ""},
	{"object watermark", `{"activities":[],"watermark":{"n":1}}`, true, 0, ""},
	{"array watermark", `{"activities":[],"watermark":["1"]}`, true, 0, ""},
	{"activities object", `{"activities":{"id":"a"}}`, true, 0, ""},
	{"activities string", `{"activities":"[]"}`, true, 0, ""},
	{"array set", `[{"activities":[]}]`, true, 0, ""},
	{"string set", `"activities"`, true, 0, ""},
	{"truncated", `{"activities":[{"id":"a"}`, true, 0, ""},
	{"trailing comma", `{"activities":[],}`, true, 0, ""},
	{"empty input", ``, true, 0, ""},
}

func TestActivitySetUnmarshal(t *testing.T) {
	for _, tt := range activitySetCases {
		t.Run(tt.name, func(t *testing.T) {
			// Start from a set already holding values: decoding must
			// replace them, never keep a stale watermark.
			set := upstream.ActivitySet{Activities: []json.RawMessage{[]byte(`{"stale":true}`)}, Watermark: "stale"}
			err := json.Unmarshal([]byte(tt.in), &set)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if len(set.Activities) != tt.count || set.Watermark != tt.watermark {
				t.Errorf("got %d activities at %q, want %d at %q", len(set.Activities), set.Watermark, tt.count, tt.watermark)
			}
			for _, a := range set.Activities {
				if strings.Contains(string(a), "stale") {
					t.Errorf("a stale activity survived: %s", a)
				}
			}
		})
	}
}

// TestActivitySetKeepsActivitiesVerbatim: the gateway forwards activities
// untouched, byte for byte.
func TestActivitySetKeepsActivitiesVerbatim(t *testing.T) {
	a := `{ "id" : "x|0000001", "text":"<b>&amp;</b> \u00e9", "n": 1.000 }`
	var set upstream.ActivitySet
	if err := json.Unmarshal([]byte(`{"activities":[`+a+`],"watermark":"1"}`), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Activities) != 1 || string(set.Activities[0]) != a {
		t.Fatalf("got %q, want %q", set.Activities, a)
	}
}

// FuzzActivitySet: decoding never panics, and a set that decodes holds
// only valid JSON activities, which encode and decode back to the same set.
func FuzzActivitySet(f *testing.F) {
	for _, tt := range activitySetCases {
		f.Add([]byte(tt.in))
	}
	f.Add([]byte(`{"activities":[{"id":"a","attachments":[{"content":{"deep":[[[{}]]]}}]}],"watermark":"0"}`))
	f.Add([]byte(`{"activities":[],"watermark":"\ud800"}`))
	f.Add([]byte(`{"activities":[],"watermark":"\xff"}`))
	f.Add([]byte(`{"activities":[],"watermark":-0}`))
	f.Add([]byte(`{"activities":[],"Watermark":"upper","watermark":"lower"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var set upstream.ActivitySet
		if err := json.Unmarshal(in, &set); err != nil {
			return
		}
		for i, a := range set.Activities {
			if !json.Valid(a) {
				t.Fatalf("activity %d is not valid JSON: %q", i, a)
			}
		}
		enc, err := json.Marshal(set.Activities)
		if err != nil {
			t.Fatalf("re-encoding the activities: %v", err)
		}
		if !json.Valid(enc) {
			t.Fatalf("re-encoded activities are not valid JSON: %q", enc)
		}
		// Round trip through the wire shape.
		wire, err := json.Marshal(map[string]any{"activities": set.Activities, "watermark": set.Watermark})
		if err != nil {
			t.Fatalf("encoding the set: %v", err)
		}
		var back upstream.ActivitySet
		if err := json.Unmarshal(wire, &back); err != nil {
			t.Fatalf("re-decoding %s: %v", wire, err)
		}
		if len(back.Activities) != len(set.Activities) || back.Watermark != set.Watermark {
			t.Fatalf("round trip: %d activities at %q, then %d at %q", len(set.Activities), set.Watermark, len(back.Activities), back.Watermark)
		}
	})
}

// TestStreamSetDecodesAsUnmarshal: the stream's decoder agrees with
// json.Unmarshal into an ActivitySet on every case, its activities
// compacted (escapes and numbers as they came).
func TestStreamSetDecodesAsUnmarshal(t *testing.T) {
	for _, tt := range activitySetCases {
		t.Run(tt.name, func(t *testing.T) { sameAsUnmarshal(t, []byte(tt.in)) })
	}
	set, _, err := upstream.DecodeStreamSet([]byte(`{"activities":[{ "id" : "x|0000001", "text":"<b>&amp;</b> \u00e9", "n": 1.000 }]}`))
	if want := `{"id":"x|0000001","text":"<b>&amp;</b> \u00e9","n":1.000}`; err != nil || len(set.Activities) != 1 || string(set.Activities[0]) != want {
		t.Fatalf("got %q, %v; want %s", set.Activities, err, want)
	}
}

// FuzzStreamSet: on any input the stream's decoder and json.Unmarshal
// agree (nesting deeper than the decoder's 300 levels aside).
func FuzzStreamSet(f *testing.F) {
	for _, tt := range activitySetCases {
		f.Add([]byte(tt.in))
	}
	f.Add([]byte(`{"activities":[],"watermark":"\ud800"}`))
	f.Add([]byte(`{"activities":[],"watermark":"\xff"}`))
	f.Add([]byte(`{"Activities":[{"a":"\u0001"}],"WATERMARK":"x","watermark":7}`))
	f.Add([]byte(`{"activities":[{"k\u0000":1e5,"\xff":"\\"}],"activities":null}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		if depth(in) > 300 {
			return
		}
		sameAsUnmarshal(t, in)
	})
}

// sameAsUnmarshal fails t unless DecodeStreamSet and json.Unmarshal
// agree on in: both refuse it, or both give the same watermark and the
// same activities, the stream's compacted.
func sameAsUnmarshal(t *testing.T, in []byte) {
	t.Helper()
	var want upstream.ActivitySet
	wantErr := json.Unmarshal(in, &want)
	got, known, err := upstream.DecodeStreamSet(in)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%q: stream decoder error %v, json.Unmarshal error %v", in, err, wantErr)
	}
	if err != nil {
		return
	}
	if known != (want.Activities != nil) || len(got.Activities) != len(want.Activities) || got.Watermark != want.Watermark {
		t.Fatalf("%q: %d activities (known %v) at %q, json.Unmarshal %d at %q", in, len(got.Activities), known, got.Watermark, len(want.Activities), want.Watermark)
	}
	for i := range want.Activities {
		var compact bytes.Buffer
		if err := json.Compact(&compact, want.Activities[i]); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Activities[i], compact.Bytes()) {
			t.Fatalf("%q: activity %d is %q, want %q", in, i, got.Activities[i], compact.Bytes())
		}
	}
}

// depth is how deeply in nests arrays and objects (strings skipped).
func depth(in []byte) int {
	d, most, inString, escaped := 0, 0, false, false
	for _, c := range in {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			d++
			most = max(most, d)
		case c == ']' || c == '}':
			d--
		}
	}
	return most
}
