package upstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/valyala/fastjson"
)

// setParsers parse stream messages; a parser reuses its memory, so a
// message costs no allocation of the parser's.
var setParsers fastjson.ParserPool

// errNotASet is what decodeStreamSet says of JSON that is not an object.
var errNotASet = errors.New("upstream: stream message is not an object")

// decodeStreamSet decodes a stream message as json.Unmarshal into an
// ActivitySet does (keys matched without regard to case, the last of a
// name winning), with every activity compacted, escapes and numbers left
// as they came, into one buffer of the set's own: an activity costs no
// allocation of its own, and msg can be reused at once. known is false
// when the message has no activities (absent or null): a message type
// from the future. The JSON is validated strictly first: an activity is
// forwarded to clients only if it is valid JSON.
func decodeStreamSet(msg []byte) (set ActivitySet, known bool, err error) {
	if err := fastjson.ValidateBytes(msg); err != nil {
		return ActivitySet{}, true, err
	}
	p := setParsers.Get()
	defer setParsers.Put(p)
	v, err := p.ParseBytes(msg)
	if err != nil {
		return ActivitySet{}, true, err
	}
	switch v.Type() {
	case fastjson.TypeNull:
		return ActivitySet{}, false, nil
	case fastjson.TypeObject:
	default:
		return ActivitySet{}, true, errNotASet
	}
	var acts, wm *fastjson.Value
	v.GetObject().Visit(func(key []byte, val *fastjson.Value) {
		switch {
		case bytes.EqualFold(key, []byte("activities")):
			acts = val
		case bytes.EqualFold(key, []byte("watermark")):
			wm = val
		}
	})
	if set.Watermark, err = watermarkOf(wm); err != nil {
		return ActivitySet{}, true, err
	}
	if acts == nil || acts.Type() == fastjson.TypeNull {
		return ActivitySet{Watermark: set.Watermark}, false, nil
	}
	arr, err := acts.Array()
	if err != nil {
		return ActivitySet{}, true, fmt.Errorf("upstream: activities: %w", err)
	}
	// Compact is never longer than what came: the buffer is not grown
	// (which would leave activities in the old one), unless a message is
	// almost nothing but whitespace.
	set.buf = setBuffers.Get().(*[]byte)
	buf := slices.Grow((*set.buf)[:0], len(msg))
	set.Activities = make([]json.RawMessage, len(arr))
	for i, a := range arr {
		start := len(buf)
		buf = a.MarshalTo(buf) // untouched values: raw strings, raw numbers
		set.Activities[i] = buf[start:len(buf):len(buf)]
	}
	*set.buf = buf[:0]
	return set, true, nil
}

// setBuffers hold stream messages' activities until the set is released.
var setBuffers = sync.Pool{New: func() any { return new([]byte) }}

// watermarkOf reads a watermark as ActivitySet.UnmarshalJSON does: a
// string, a number kept verbatim, null or absent. It looks at the raw
// token: asking fastjson a string's type unescapes it, best effort.
func watermarkOf(v *fastjson.Value) (string, error) {
	if v == nil {
		return "", nil
	}
	var scratch [64]byte // a watermark is short: no allocation but the string
	raw := v.MarshalTo(scratch[:0])
	switch c := raw[0]; {
	case c == 'n':
		return "", nil
	case c == '-' || c >= '0' && c <= '9':
		return string(raw), nil
	case c == '"':
		if bytes.IndexByte(raw, '\\') < 0 && isASCII(raw) {
			return string(raw[1 : len(raw)-1]), nil
		}
		var s string // escapes, or bytes encoding/json would replace
		err := json.Unmarshal(raw, &s)
		return s, err
	default:
		return "", fmt.Errorf("upstream: watermark is neither string nor number")
	}
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
