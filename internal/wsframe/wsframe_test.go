package wsframe

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// clientFrame encodes a masked frame as a client sends it.
func clientFrame(b0 byte, payload []byte) []byte {
	var out []byte
	n := len(payload)
	switch {
	case n <= 125:
		out = append(out, b0, 0x80|byte(n))
	case n <= 0xFFFF:
		out = append(out, b0, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, b0, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	mask := []byte{0x37, 0xfa, 0x21, 0x3d}
	out = append(out, mask...)
	for i, c := range payload {
		out = append(out, c^mask[i&3])
	}
	return out
}

func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// serverFrame decodes one unmasked frame the server wrote.
func serverFrame(t *testing.T, b []byte) (b0 byte, payload, rest []byte) {
	t.Helper()
	if len(b) < 2 || b[1]&0x80 != 0 {
		t.Fatalf("not an unmasked server frame: % x", b)
	}
	n, at := int(b[1]&0x7F), 2
	switch n {
	case 126:
		n, at = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		n, at = int(binary.BigEndian.Uint64(b[2:])), 10
	}
	if len(b) < at+n {
		t.Fatalf("frame cut short: % x", b)
	}
	return b[0], b[at : at+n], b[at+n:]
}

func TestTextFrames(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 1000, 0xFFFF, 0x10000, 200000} {
		payload := bytes.Repeat([]byte{'a'}, n)
		dst, mark := BeginText([]byte("prefix"))
		dst = append(dst, payload...)
		dst = EndText(dst, mark)
		if !bytes.HasPrefix(dst, []byte("prefix")) {
			t.Fatalf("%d: what came before the frame changed", n)
		}
		b0, got, rest := serverFrame(t, dst[len("prefix"):])
		if b0 != 0x81 || !bytes.Equal(got, payload) || len(rest) != 0 {
			t.Fatalf("%d: b0 %x, payload %d bytes, %d left", n, b0, len(got), len(rest))
		}
		if want := AppendText(nil, payload); !bytes.Equal(dst[len("prefix"):], want) {
			t.Fatalf("%d: BeginText/EndText and AppendText differ", n)
		}
	}
}

func TestCloseFrame(t *testing.T) {
	b0, p, _ := serverFrame(t, AppendClose(nil, CloseGoingAway, strings.Repeat("é", 100)))
	if b0 != 0x88 || len(p) > 125 || binary.BigEndian.Uint16(p) != CloseGoingAway {
		t.Fatalf("b0 %x, %d bytes", b0, len(p))
	}
	if r := string(p[2:]); !strings.HasPrefix(r, "éé") || len(r)%2 != 0 {
		t.Fatalf("reason cut inside a character: %q", r)
	}
	if b0, p, _ := serverFrame(t, Ping); b0 != 0x89 || len(p) != 0 {
		t.Fatalf("Ping: %x %q", b0, p)
	}
}

// feed runs input through a fresh Reader whole, then byte by byte, and
// checks both give the same answer.
func feed(t *testing.T, input []byte) ([]byte, *Closing) {
	t.Helper()
	r := &Reader{MaxMessage: 4096}
	out, c := r.Feed(bytes.Clone(input), nil)
	r2 := &Reader{MaxMessage: 4096}
	var out2 []byte
	var c2 *Closing
	for i := range input {
		if out2, c2 = r2.Feed([]byte{input[i]}, out2); c2 != nil {
			break
		}
	}
	if !bytes.Equal(out, out2) || (c == nil) != (c2 == nil) || (c != nil && *c != *c2) {
		t.Fatalf("whole and byte by byte differ:\n%x %+v\n%x %+v", out, c, out2, c2)
	}
	return out, c
}

func TestReader(t *testing.T) {
	cat := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	tests := []struct {
		name      string
		in        []byte
		wantCode  int // 0: still open
		byClient  bool
		wantFrame []byte // the answer, as the server frames it
	}{
		{name: "keepalive (empty text)", in: clientFrame(0x81, nil)},
		{name: "text", in: clientFrame(0x81, []byte(`{"x":1}`))},
		{name: "ping", in: clientFrame(0x89, []byte("hi")), wantFrame: appendControl(nil, OpPong, []byte("hi"))},
		{name: "pong ignored", in: clientFrame(0x8A, []byte("x"))},
		{name: "fragmented text", in: cat(clientFrame(0x01, []byte("ab")), clientFrame(0x89, nil), clientFrame(0x80, []byte("cd"))),
			wantFrame: appendControl(nil, OpPong, nil)},
		{name: "utf-8 across fragments", in: cat(clientFrame(0x01, []byte("\xc3")), clientFrame(0x80, []byte("\xa9")))},
		{name: "close with code", in: clientFrame(0x88, closePayload(1000, "bye")), wantCode: 1000, byClient: true,
			wantFrame: AppendClose(nil, 1000, "")},
		{name: "close without code", in: clientFrame(0x88, nil), byClient: true, wantCode: 0,
			wantFrame: appendControl(nil, OpClose, nil)},
		{name: "binary", in: clientFrame(0x82, []byte{1, 2}), wantCode: CloseUnsupportedData},
		{name: "too big", in: clientFrame(0x81, make([]byte, 5000)), wantCode: CloseMessageTooBig},
		{name: "too big in fragments", in: cat(clientFrame(0x01, make([]byte, 3000)), clientFrame(0x80, make([]byte, 3000))), wantCode: CloseMessageTooBig},
		{name: "unmasked", in: []byte{0x81, 0x00}, wantCode: CloseProtocolError},
		{name: "reserved bits", in: clientFrame(0xC1, nil), wantCode: CloseProtocolError},
		{name: "unknown opcode", in: clientFrame(0x83, nil), wantCode: CloseProtocolError},
		{name: "continuation first", in: clientFrame(0x80, []byte("x")), wantCode: CloseProtocolError},
		{name: "text inside fragments", in: cat(clientFrame(0x01, []byte("a")), clientFrame(0x81, []byte("b"))), wantCode: CloseProtocolError},
		{name: "fragmented ping", in: clientFrame(0x09, nil), wantCode: CloseProtocolError},
		{name: "long ping", in: clientFrame(0x89, make([]byte, 126)), wantCode: CloseProtocolError},
		{name: "bad utf-8", in: clientFrame(0x81, []byte{0xff}), wantCode: CloseInvalidPayload},
		{name: "bad utf-8 across fragments", in: cat(clientFrame(0x01, []byte("\xc3")), clientFrame(0x80, []byte("a"))), wantCode: CloseInvalidPayload},
		{name: "one-byte close", in: clientFrame(0x88, []byte{3}), wantCode: CloseProtocolError},
		{name: "close code 1005", in: clientFrame(0x88, closePayload(1005, "")), wantCode: CloseProtocolError},
		{name: "close reason not utf-8", in: clientFrame(0x88, closePayload(1000, "\xff")), wantCode: CloseInvalidPayload},
		{name: "length out of range", in: append([]byte{0x81, 0xFF, 0x80}, make([]byte, 11)...), wantCode: CloseProtocolError},
		{name: "garbage", in: []byte("GET / HTTP/1.1\r\n\r\n"), wantCode: CloseProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, c := feed(t, tt.in)
			open := tt.wantCode == 0 && !tt.byClient
			if open != (c == nil) {
				t.Fatalf("closing %+v, want code %d", c, tt.wantCode)
			}
			if c != nil && (c.Code != tt.wantCode || c.ByClient != tt.byClient) {
				t.Fatalf("closing %+v, want code %d by client %v", c, tt.wantCode, tt.byClient)
			}
			want := tt.wantFrame
			if want == nil && c != nil {
				want = AppendClose(nil, c.Code, c.Reason)
			}
			if !bytes.Equal(out, want) {
				t.Fatalf("answer % x, want % x", out, want)
			}
		})
	}
}

func FuzzReader(f *testing.F) {
	f.Add(clientFrame(0x81, nil), 3)
	f.Add(append(clientFrame(0x01, []byte("ab")), clientFrame(0x80, []byte("c"))...), 1)
	f.Add(clientFrame(0x88, closePayload(1001, "x")), 2)
	f.Fuzz(func(t *testing.T, in []byte, split int) {
		r := &Reader{MaxMessage: 1024}
		var c *Closing
		var out []byte
		if split <= 0 || split > len(in) {
			split = len(in)
		}
		in = bytes.Clone(in)
		for len(in) > 0 && c == nil {
			n := min(split, len(in))
			out, c = r.Feed(in[:n], out)
			in = in[n:]
		}
		// Whatever came in, every answer is a well-formed server frame,
		// and a closing ends with a close frame.
		var last byte
		for len(out) > 0 {
			b0, p, rest := serverFrame(t, out)
			if b0&0x08 != 0 && len(p) > 125 {
				t.Fatalf("control frame of %d bytes", len(p))
			}
			last, out = b0, rest
		}
		if c != nil && last != 0x88 {
			t.Fatalf("closing %+v without a close frame", c)
		}
	})
}

// FuzzParseServerFrame: whatever a server sends, parsing never panics nor
// takes more than it was given, and a frame this package encodes comes back
// whole, in any prefix of it as "not yet".
func FuzzParseServerFrame(f *testing.F) {
	f.Add([]byte(`{"activities":[]}`), []byte{0x89, 0x00, 0x81})
	f.Add(bytes.Repeat([]byte("x"), 300), []byte{0x01, 0x7E, 0x00})
	f.Fuzz(func(t *testing.T, payload, junk []byte) {
		if fr, n, bad := ParseServerFrame(junk, 1<<20); bad == nil && n > len(junk) || n < 0 {
			t.Fatalf("took %d of %d bytes (%+v)", n, len(junk), fr)
		}
		enc := AppendText(nil, payload)
		for cut := range len(enc) {
			if _, n, bad := ParseServerFrame(enc[:cut], 1<<20); n != 0 || bad != nil {
				t.Fatalf("a frame's first %d bytes parsed as n=%d bad=%v", cut, n, bad)
			}
		}
		fr, n, bad := ParseServerFrame(append(enc, junk...), 1<<20)
		if bad != nil || n != len(enc) || fr.Op != OpText || !fr.Fin || !bytes.Equal(fr.Payload, payload) {
			t.Fatalf("round trip: n=%d/%d bad=%v frame %+v", n, len(enc), bad, fr)
		}
		// The client side: a masked frame unmasks to what was sent.
		m := AppendMasked(nil, OpText, payload, 0xA1B2C3D4)
		n, got, b0, ok, bad := frameAt(m, 1<<20, true)
		if !ok || bad != nil || n != len(m) || b0 != finBit|OpText || !bytes.Equal(got, payload) {
			t.Fatalf("masked round trip: n=%d/%d ok=%v bad=%v b0=%#x", n, len(m), ok, bad, b0)
		}
	})
}
