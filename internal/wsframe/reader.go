package wsframe

import (
	"encoding/binary"
	"unicode/utf8"
)

// A Reader parses what a client sends, in whatever pieces it arrives. It
// answers control frames itself (pong for ping, the closing handshake) and
// checks data messages without keeping them: a Direct Line client sends
// nothing but empty keepalives, so text is checked and dropped. Between
// calls it keeps only an incomplete frame, and a fragmented message's
// tail for the UTF-8 check.
type Reader struct {
	// MaxMessage bounds a data message (all its fragments); a longer one
	// closes the connection with CloseMessageTooBig.
	MaxMessage int

	partial   []byte // an incomplete frame, from an earlier Feed
	inMessage bool   // a fragmented text message is open
	msgLen    int
	carry     []byte // the message's bytes not yet known to be whole UTF-8
}

// A Closing says the connection is over: Code went in the close frame
// appended to the answer (the client's own code when it closed first).
type Closing struct {
	Code     int
	ByClient bool // the client sent a close frame, or reset
	Reason   string
}

// Feed parses data (the Reader may modify it: frames are unmasked in
// place), appends what the server must send back to out, and returns it
// with a non-nil Closing once the connection must end; out then ends with
// the close frame. Nothing is read after that.
func (r *Reader) Feed(data, out []byte) ([]byte, *Closing) {
	if len(r.partial) > 0 {
		data = append(r.partial, data...)
		r.partial = r.partial[:0]
	}
	for len(data) > 0 {
		n, payload, b0, ok, bad := frameAt(data, r.maxLen(), true)
		if bad != nil {
			return AppendClose(out, bad.Code, bad.Reason), bad
		}
		if !ok {
			r.partial = append(r.partial, data...)
			break
		}
		var c *Closing
		if out, c = r.handle(b0, payload, out); c != nil {
			return out, c
		}
		data = data[n:]
	}
	if len(r.partial) == 0 && cap(r.partial) > 512 {
		r.partial = nil // a big frame's buffer is not kept for life
	}
	return out, nil
}

// maxLen is the largest payload a data frame may have now.
func (r *Reader) maxLen() int {
	return max(r.MaxMessage-r.msgLen, maxControl)
}

func protocolError(reason string) *Closing {
	return &Closing{Code: CloseProtocolError, Reason: reason}
}

// frameAt decodes the frame at the start of b: its length, its unmasked
// payload and first byte; ok is false when b holds only part of it.
// masked says which side sent it: clients mask their frames, servers never.
func frameAt(b []byte, maxLen int, masked bool) (n int, payload []byte, b0 byte, ok bool, bad *Closing) {
	if len(b) < 2 {
		return 0, nil, 0, false, nil
	}
	b0, b1 := b[0], b[1]
	if b0&0x70 != 0 {
		return 0, nil, 0, false, protocolError("reserved bits set")
	}
	if (b1&0x80 != 0) != masked {
		if masked {
			return 0, nil, 0, false, protocolError("client frames must be masked")
		}
		return 0, nil, 0, false, protocolError("server frames must not be masked")
	}
	op := b0 & 0x0F
	control := op&0x08 != 0
	length, at := uint64(b1&0x7F), 2
	switch length {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0, false, nil
		}
		length, at = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0, false, nil
		}
		length, at = binary.BigEndian.Uint64(b[2:]), 10
		if length>>63 != 0 {
			return 0, nil, 0, false, protocolError("frame length out of range")
		}
	}
	if control && (length > maxControl || b0&finBit == 0) {
		return 0, nil, 0, false, protocolError("control frames must be whole and at most 125 bytes")
	}
	if !control && length > uint64(maxLen) {
		return 0, nil, 0, false, &Closing{Code: CloseMessageTooBig, Reason: "message too big"}
	}
	if masked {
		at += 4
	}
	end := at + int(length)
	if len(b) < end {
		return 0, nil, 0, false, nil
	}
	payload = b[at:end]
	if masked {
		mask := b[at-4 : at]
		for i := range payload {
			payload[i] ^= mask[i&3]
		}
	}
	return end, payload, b0, true, nil
}

// handle acts on one whole frame.
func (r *Reader) handle(b0 byte, payload, out []byte) ([]byte, *Closing) {
	fin := b0&finBit != 0
	switch op := b0 & 0x0F; op {
	case OpPing:
		return appendControl(out, OpPong, payload), nil
	case OpPong:
		return out, nil
	case OpClose:
		c := closeFrom(payload)
		if c.Code == 0 { // no code: echo an empty close
			return appendControl(out, OpClose, nil), c
		}
		if !c.ByClient {
			return AppendClose(out, c.Code, c.Reason), c
		}
		return AppendClose(out, c.Code, ""), c
	case OpBinary:
		c := &Closing{Code: CloseUnsupportedData, Reason: "binary messages are not accepted"}
		return AppendClose(out, c.Code, c.Reason), c
	case OpText, OpContinuation:
		if (op == OpText) == r.inMessage {
			c := protocolError("unexpected continuation")
			if op == OpText {
				c = protocolError("a new message inside a fragmented one")
			}
			return AppendClose(out, c.Code, c.Reason), c
		}
		if c := r.text(payload, fin); c != nil {
			return AppendClose(out, c.Code, c.Reason), c
		}
		return out, nil
	default:
		c := protocolError("unknown opcode")
		return AppendClose(out, c.Code, c.Reason), c
	}
}

// text checks a text frame (whole or a fragment) and drops it.
func (r *Reader) text(payload []byte, fin bool) *Closing {
	r.msgLen += len(payload)
	if r.msgLen > r.MaxMessage {
		return &Closing{Code: CloseMessageTooBig, Reason: "message too big"}
	}
	if fin && !r.inMessage {
		r.msgLen = 0
		if !utf8.Valid(payload) {
			return &Closing{Code: CloseInvalidPayload, Reason: "text is not UTF-8"}
		}
		return nil
	}
	// Fragmented: a character may straddle fragments, so the check runs
	// on the carried tail plus this fragment up to its last whole rune.
	r.inMessage = true
	r.carry = append(r.carry, payload...)
	cut := len(r.carry)
	if !fin {
		cut = wholeRunes(r.carry)
	}
	if !utf8.Valid(r.carry[:cut]) {
		return &Closing{Code: CloseInvalidPayload, Reason: "text is not UTF-8"}
	}
	r.carry = append(r.carry[:0], r.carry[cut:]...)
	if fin {
		r.inMessage, r.msgLen, r.carry = false, 0, nil
	}
	return nil
}

// wholeRunes is the length of b's prefix that ends on a rune boundary
// (a last rune still missing bytes is left out).
func wholeRunes(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			return len(b)
		}
	}
	return len(b)
}

// closeFrom reads a client's close frame: its code (0 for none) and
// whether it is acceptable; a bad one is answered with a protocol error.
func closeFrom(payload []byte) *Closing {
	switch {
	case len(payload) == 0:
		return &Closing{ByClient: true}
	case len(payload) == 1:
		return protocolError("close frame with a one-byte payload")
	}
	code := int(binary.BigEndian.Uint16(payload))
	if !ValidCloseCode(code) {
		return protocolError("invalid close code")
	}
	if !utf8.Valid(payload[2:]) {
		return &Closing{Code: CloseInvalidPayload, Reason: "close reason is not UTF-8"}
	}
	return &Closing{Code: code, ByClient: true, Reason: string(payload[2:])}
}

// ValidCloseCode reports whether a peer may send code (RFC 6455 §7.4).
func ValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
