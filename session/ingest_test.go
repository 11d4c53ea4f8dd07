package session

import (
	"encoding/json"
	"testing"
)

// activityCases seed FuzzDecodeActivities; each is one raw activity.
var activityCases = []string{
	`{"id":"a|0000001","type":"message","text":"hi"}`,
	`{"type":"typing"}`,
	`{"ID":"upper","Type":"Message"}`,
	`{"id":"first","id":"last"}`,
	`{"id":null,"type":null}`,
	`{"id":7}`,
	`{"type":["message"]}`,
	`{"id":"esc\u00e9\"q"}`,
	"{\n \"id\" : \"spaced\"\n}",
	`[1,2]`,
	`"message"`,
	`null`,
	`{"id":"x","type":"typing","from":{"id":"u","role":"user"}}`,
}

// FuzzDecodeActivities: every activity the gateway keeps is one line of
// JSON whose id and type are what json.Unmarshal reads from it, and it
// keeps exactly those json.Unmarshal can read an id and type from.
func FuzzDecodeActivities(f *testing.F) {
	for _, c := range activityCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return // the upstream decoders hand over valid JSON only
		}
		out, bad := decodeActivities(nil, []json.RawMessage{raw})
		line, isObject := oneLine(raw)
		var want activityMeta
		wantOK := isObject && json.Unmarshal(line, &want) == nil
		if wantOK != (len(out) == 1) || bad != 1-len(out) {
			t.Fatalf("%q: kept %d (bad %d), json.Unmarshal ok %v", raw, len(out), bad, wantOK)
		}
		if !wantOK {
			return
		}
		if out[0].meta != want {
			t.Fatalf("%q: meta %+v, json.Unmarshal %+v", raw, out[0].meta, want)
		}
		if !json.Valid(out[0].json) {
			t.Fatalf("%q: kept %q, not JSON", raw, out[0].json)
		}
	})
}

// TestDecodeActivitiesAllocations: reading an activity's id and type
// costs at most the id's string, given room for the result (json.Unmarshal
// cost about a dozen).
func TestDecodeActivitiesAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops readers at random")
	}
	raw := []json.RawMessage{json.RawMessage(`{"id":"Fk2b1rHfCEX8PqEHH3dyCo-eu|0000042","type":"message","text":"hello","from":{"id":"bot"}}`)}
	out, _ := decodeActivities(nil, raw) // the reader pool's first reader
	// The id, no more.
	if got := testing.AllocsPerRun(100, func() { out, _ = decodeActivities(out[:0], raw) }); got > 1 {
		t.Errorf("%v allocations per activity, want at most 1", got)
	}
}
