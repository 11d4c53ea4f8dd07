package cluster

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse"
)

// The wire format of journal entries and bus messages: a kind letter, then
// fields, strings length-prefixed (uvarint). An appended message's head is
// written by the append script, which alone knows the offsets:
// "A<epoch> <first offset> " followed by what Go wrote (sender, watermark,
// count, entries).

// Kind letters.
const (
	tagAppended  = 'A'
	tagEphemeral = 'E'
	tagStatus    = 'S'
	tagReleased  = 'R'
	tagRefreshed = 'F'
	tagSender    = 'U'
	tagEnded     = 'X'
)

var errMalformed = errors.New("cluster: malformed message")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendEntry encodes an entry; entries are self-delimiting, so encodings
// concatenate.
func appendEntry(b []byte, e *session.Entry) []byte {
	b = appendString(b, string(e.Event))
	flags := byte(0)
	if e.Durable {
		flags = 1
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint64(b, e.Hash)
	b = appendString(b, e.Base)
	return appendString(b, e.After)
}

// reader decodes what the appenders wrote.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errMalformed
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || uint64(len(r.b)) < n {
		r.err = errMalformed
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string { return string(r.bytes()) }

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.err = errMalformed
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uint64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.err = errMalformed
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) entry() session.Entry {
	var e session.Entry
	e.Event = sse.Event(r.bytes())
	e.Durable = r.byte() == 1
	e.Hash = r.uint64()
	e.Base = r.string()
	e.After = r.string()
	return e
}

// decodeEntry decodes one stored entry.
func decodeEntry(b []byte) (session.Entry, error) {
	r := reader{b: b}
	e := r.entry()
	return e, r.err
}

// appendedTail is what Go writes of an appended message, after the head
// the script writes: the sender, the watermark, the entries.
func appendedTail(from, watermark string, entries []session.Entry) (tail []byte, blobs []string) {
	blobs = make([]string, len(entries))
	var all []byte
	for i := range entries {
		start := len(all)
		all = appendEntry(all, &entries[i])
		blobs[i] = string(all[start:])
	}
	tail = appendString(nil, from)
	tail = appendString(tail, watermark)
	tail = binary.AppendUvarint(tail, uint64(len(entries)))
	return append(tail, all...), blobs
}

// encodeMessage encodes any message but KindAppended, which the append
// script publishes.
func encodeMessage(from string, m *session.Message) []byte {
	var b []byte
	switch m.Kind {
	case session.KindEphemeral:
		b = appendString(append(b, tagEphemeral), from)
		b = appendEntry(b, &m.Entry)
	case session.KindStatus, session.KindEnded:
		tag := byte(tagStatus)
		if m.Kind == session.KindEnded {
			tag = tagEnded
		}
		b = appendString(append(b, tag), from)
		b = appendString(b, string(m.Status.State))
		b = appendString(b, m.Status.Reason)
		b = binary.AppendUvarint(b, uint64(max(m.Status.RetryIn, 0)))
		b = appendString(b, string(m.Terminal))
	case session.KindReleased:
		b = appendString(append(b, tagReleased), from)
	case session.KindRefreshed:
		b = appendString(append(b, tagRefreshed), from)
		b = append(b, m.Token[:]...)
		b = binary.AppendUvarint(b, uint64(m.Expires.UnixMilli()))
	case session.KindSender:
		b = appendString(append(b, tagSender), from)
		b = appendString(b, m.Sender)
	}
	return b
}

// decodeMessage decodes a published message and says who sent it.
func decodeMessage(payload string) (from string, m session.Message, err error) {
	if payload == "" {
		return "", m, errMalformed
	}
	tag, rest := payload[0], payload[1:]
	var r reader
	switch tag {
	case tagAppended:
		epoch, after, ok := strings.Cut(rest, " ")
		firstText, tail, ok2 := strings.Cut(after, " ")
		first, err := strconv.ParseUint(firstText, 10, 64)
		if !ok || !ok2 || err != nil {
			return "", m, errMalformed
		}
		r = reader{b: []byte(tail)}
		from = r.string()
		m.Kind = session.KindAppended
		m.Watermark = r.string()
		n := r.uvarint()
		if r.err == nil && n > uint64(len(r.b)) {
			return "", m, errMalformed
		}
		m.Records = make([]session.Record, 0, n)
		for i := range n {
			e := r.entry()
			m.Records = append(m.Records, session.Record{Pos: session.Position{Epoch: epoch, Offset: first + i}, Entry: e})
		}
		m.Pos = session.Position{Epoch: epoch, Offset: first + n - 1}
		return from, m, r.err
	case tagEphemeral:
		r = reader{b: []byte(rest)}
		from = r.string()
		m.Kind = session.KindEphemeral
		m.Entry = r.entry()
	case tagStatus, tagEnded:
		r = reader{b: []byte(rest)}
		from = r.string()
		m.Kind = session.KindStatus
		if tag == tagEnded {
			m.Kind = session.KindEnded
		}
		m.Status.State = session.State(r.string())
		m.Status.Reason = r.string()
		m.Status.RetryIn = int64(r.uvarint())
		if t := r.bytes(); len(t) > 0 {
			m.Terminal = t
		}
	case tagReleased:
		r = reader{b: []byte(rest)}
		from = r.string()
		m.Kind = session.KindReleased
	case tagRefreshed:
		r = reader{b: []byte(rest)}
		from = r.string()
		m.Kind = session.KindRefreshed
		if len(r.b) < len(m.Token) {
			return "", m, errMalformed
		}
		copy(m.Token[:], r.b)
		r.b = r.b[len(m.Token):]
		m.Expires = time.UnixMilli(int64(r.uvarint()))
	case tagSender:
		r = reader{b: []byte(rest)}
		from = r.string()
		m.Kind = session.KindSender
		m.Sender = r.string()
	default:
		return "", m, errMalformed
	}
	return from, m, r.err
}
