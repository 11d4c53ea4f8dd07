// Package wsframe encodes and parses WebSocket frames (RFC 6455 §5) as
// plain byte slices, for both sides dlsse plays: the server of its clients'
// streams, and the client of Direct Line's. A stream builds its frames in
// the batch buffer it writes anyway and parses what it reads in pieces, so
// a stream, client side or upstream, holds no goroutine and no buffer of
// its own while idle. docs/websocket.md says why this is not
// fasthttp/websocket's Conn.
package wsframe

import "encoding/binary"

// Opcodes (RFC 6455 §5.2).
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA

	finBit = 0x80
)

// Close codes (RFC 6455 §7.4.1 and the IANA registry).
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseUnsupportedData = 1003
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
	CloseNoStatus        = 1005 // never sent: a close frame without a code
	CloseInternalError   = 1011
	CloseTryAgainLater   = 1013
)

// MaxHeader is the longest header of a server frame (no mask).
const MaxHeader = 10

// maxControl is the largest payload of a control frame.
const maxControl = 125

// appendHeader appends a final, unmasked frame header.
func appendHeader(dst []byte, op byte, n int) []byte {
	switch {
	case n <= 125:
		return append(dst, finBit|op, byte(n))
	case n <= 0xFFFF:
		return append(dst, finBit|op, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, finBit|op, 127)
		return binary.BigEndian.AppendUint64(dst, uint64(n))
	}
}

// BeginText starts a text frame at the end of dst: it reserves room for
// the header and returns where the frame starts. Append the payload, then
// call EndText.
func BeginText(dst []byte) ([]byte, int) {
	mark := len(dst)
	return append(dst, make([]byte, MaxHeader)...), mark
}

// EndText finishes the frame BeginText started at mark: it writes the
// header and moves the payload up against it (the header is shorter than
// the room reserved unless the payload is 64 KiB or more).
func EndText(dst []byte, mark int) []byte {
	n := len(dst) - mark - MaxHeader
	var h [MaxHeader]byte
	hdr := appendHeader(h[:0], OpText, n)
	copy(dst[mark+len(hdr):], dst[mark+MaxHeader:])
	copy(dst[mark:], hdr)
	return dst[:len(dst)-(MaxHeader-len(hdr))]
}

// AppendText appends a text frame holding payload.
func AppendText(dst, payload []byte) []byte {
	return append(appendHeader(dst, OpText, len(payload)), payload...)
}

// AppendClose appends a close frame with code and reason, the reason cut
// to fit a control frame (at a UTF-8 boundary).
func AppendClose(dst []byte, code int, reason string) []byte {
	reason = truncateUTF8(reason, maxControl-2)
	dst = appendHeader(dst, OpClose, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...)
}

// appendControl appends a control frame with payload (≤ 125 bytes).
func appendControl(dst []byte, op byte, payload []byte) []byte {
	return append(appendHeader(dst, op, len(payload)), payload...)
}

// Ping is a ping frame with no payload: a stream's heartbeat. Shared;
// never modify it.
var Ping = appendControl(nil, OpPing, nil)

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
