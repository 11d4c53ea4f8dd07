// Package sse encodes Server-Sent Events and runs the per-connection loop
// that writes them to a client.
//
// It knows nothing of Direct Line or of any HTTP framework: events are
// encoded once into immutable byte slices that every subscriber shares, and
// a stream writes whatever a [Feed] hands it to any [Writer]. [Start] runs
// a stream without holding a goroutine while it is idle (what the gateway
// runs for every client); [Serve] is the same loop on the caller's
// goroutine, for callers that have one to spare. The encoder
// guarantees that no value, whatever bytes it holds, can break the event
// framing: a newline in data becomes another data line, and CR, LF and NUL
// are dropped from ids, event names and comments.
package sse

import (
	"bytes"
	"strconv"
	"time"
)

// Event is one encoded event, ready to be written as is. Its bytes are shared
// by every subscriber that receives it and must never be modified.
type Event []byte

// NewEvent encodes an event. id and name may be empty (the field is then
// left out: a browser keeps its previous Last-Event-ID when an event has no
// id). data is written as one data line per line it contains.
func NewEvent(id, name string, data []byte) Event {
	return Event(AppendEvent(make([]byte, 0, len(id)+len(name)+len(data)+24), id, name, data))
}

// AppendEvent appends the encoding of an event to dst and returns it.
func AppendEvent(dst []byte, id, name string, data []byte) []byte {
	if id != "" {
		dst = append(dst, "id: "...)
		dst = appendField(dst, id)
		dst = append(dst, '\n')
	}
	if name != "" {
		dst = append(dst, "event: "...)
		dst = appendField(dst, name)
		dst = append(dst, '\n')
	}
	dst = appendData(dst, data)
	return append(dst, '\n')
}

// AppendComment appends a comment line (": text"), which clients ignore and
// proxies count as traffic.
func AppendComment(dst []byte, text string) []byte {
	dst = append(dst, ':')
	if text != "" {
		dst = append(dst, ' ')
		dst = appendField(dst, text)
	}
	return append(dst, '\n', '\n')
}

// AppendRetry appends a retry hint: how long a browser waits before it
// reconnects after the stream ends.
func AppendRetry(dst []byte, d time.Duration) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, d.Milliseconds(), 10)
	return append(dst, '\n', '\n')
}

// appendData writes data as data lines. CRLF, CR and LF all end a line in
// SSE, so each of them starts a new data line; a client joins the lines
// back with LF.
func appendData(dst, data []byte) []byte {
	for {
		dst = append(dst, "data: "...)
		i := lineEnd(data)
		if i < 0 {
			dst = appendNoNUL(dst, data)
			return append(dst, '\n')
		}
		dst = appendNoNUL(dst, data[:i])
		dst = append(dst, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

// lineEnd returns the index of the first CR or LF in b, or -1. It is two
// bytes.IndexByte scans rather than one bytes.IndexAny: IndexByte is
// vectorised, IndexAny goes byte by byte, and activity JSON (the bulk of
// what is encoded) is one long line. The CR scan stops at the first LF, so
// encoding stays linear however many lines data has.
func lineEnd(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	upTo := b
	if lf >= 0 {
		upTo = b[:lf]
	}
	if cr := bytes.IndexByte(upTo, '\r'); cr >= 0 {
		return cr
	}
	return lf
}

// appendNoNUL copies b, leaving NUL bytes out: some clients end a field at
// NUL, which would let data smuggle framing.
func appendNoNUL(dst, b []byte) []byte {
	if bytes.IndexByte(b, 0) < 0 {
		return append(dst, b...)
	}
	for _, c := range b {
		if c != 0 {
			dst = append(dst, c)
		}
	}
	return dst
}

// appendField copies a single-line value, leaving CR, LF and NUL out so the
// value can never end its line early (and a browser ignores an id holding
// NUL).
func appendField(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\r', '\n', 0:
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
