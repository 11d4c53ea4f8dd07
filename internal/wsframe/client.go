package wsframe

import "encoding/binary"

// A Frame is one whole frame a server sent.
type Frame struct {
	Op      byte
	Fin     bool
	Payload []byte // in the buffer it was parsed from
}

// ParseServerFrame decodes the frame at the start of b, as a client reads
// it (unmasked): n is how much of b it took, 0 when b holds only part of
// it. A data frame longer than maxLen is refused with CloseMessageTooBig;
// bad says why b does not start with a frame a server may send.
func ParseServerFrame(b []byte, maxLen int) (f Frame, n int, bad *Closing) {
	n, payload, b0, ok, bad := frameAt(b, maxLen, false)
	if !ok {
		return Frame{}, 0, bad
	}
	return Frame{Op: b0 & 0x0F, Fin: b0&finBit != 0, Payload: payload}, n, nil
}

// AppendMasked appends a final frame as a client sends it: masked with
// key (which the client must choose unpredictably, RFC 6455 §5.3).
func AppendMasked(dst []byte, op byte, payload []byte, key uint32) []byte {
	n := len(payload)
	switch {
	case n <= 125:
		dst = append(dst, finBit|op, 0x80|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, finBit|op, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, finBit|op, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = binary.BigEndian.AppendUint32(dst, key)
	mask := dst[len(dst)-4:]
	start := len(dst)
	dst = append(dst, payload...)
	for i := range payload {
		dst[start+i] ^= mask[i&3]
	}
	return dst
}

// CloseFrom reads a server's close frame payload: its code, 1005 (no
// status) when it has none.
func CloseFrom(payload []byte) (code int, reason string) {
	if len(payload) < 2 {
		return CloseNoStatus, ""
	}
	return int(binary.BigEndian.Uint16(payload)), string(payload[2:])
}
