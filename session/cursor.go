package session

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"strings"

	"github.com/dlsse/dlsse/upstream"
)

// A Cursor marks a place in a conversation: just after one activity. It is
// what a stream sends as the SSE id and what a subscriber resumes from.
//
// Direct Line watermarks only mark whole ActivitySets, so a cursor holds two
// parts: Base, the watermark from before the activity's set (replaying from
// it is guaranteed to include the activity), and Hash, a digest of the
// activity's id that pins the exact activity within what Base replays.
// Resuming from a cursor means: everything after Base, minus everything up
// to and including the activity whose id hashes to Hash. This holds however
// Direct Line batches the replay, which counting positions would not.
//
// A cursor with no Hash is a plain Direct Line watermark: everything after
// Base. It is written "BASE~", so that every cursor dlsse issues holds the
// separator and a bare word in Last-Event-ID is refused as what it is, not
// taken for a watermark (the watermark query parameter takes plain ones).
type Cursor struct {
	Base string
	Hash uint64
	// HasHash distinguishes a plain watermark from a hash that is zero.
	HasHash bool
	// Beginning marks the start of the conversation, before any
	// activity (written "~"): Direct Line has no watermark for it.
	Beginning bool
}

// cursorSep separates Base from Hash. Direct Line watermarks are digits
// and a few punctuation marks; '~' is not among them and is refused in a
// watermark, so the split is unambiguous.
const cursorSep = '~'

// MaxCursorLen bounds what is accepted from Last-Event-ID and friends.
const MaxCursorLen = 256

// hashLen is the length of an encoded 64-bit hash in unpadded base64url.
const hashLen = 11

// ErrBadCursor reports a cursor that cannot have been issued by dlsse.
var ErrBadCursor = errors.New("session: malformed cursor")

// CursorFor returns the cursor just after the activity with id, which
// arrived in a set replayable from base.
func CursorFor(base, id string) Cursor {
	return Cursor{Base: base, Hash: IDHash(id), HasHash: true}
}

// IDHash is the 64-bit digest of an activity id used in cursors and for
// de-duplication. FNV-1a: fast, stable across processes and versions.
func IDHash(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

// String encodes the cursor: "BASE~HASH", "BASE~" for a watermark, "~"
// for the beginning.
func (c Cursor) String() string {
	var buf [64]byte
	return string(c.Append(buf[:0]))
}

// Append appends the cursor's encoding (String) to dst.
func (c Cursor) Append(dst []byte) []byte {
	if c.Beginning {
		return append(dst, cursorSep)
	}
	dst = append(dst, c.Base...)
	dst = append(dst, cursorSep)
	if !c.HasHash {
		return dst
	}
	var raw [8]byte
	binary.BigEndian.PutUint64(raw[:], c.Hash)
	var enc [hashLen]byte
	base64.RawURLEncoding.Encode(enc[:], raw[:])
	return append(dst, enc[:]...)
}

// ParseCursor decodes a cursor sent back by a client.
func ParseCursor(s string) (Cursor, error) {
	if len(s) > MaxCursorLen {
		return Cursor{}, ErrBadCursor
	}
	if s == string(cursorSep) {
		return Cursor{Beginning: true}, nil
	}
	base, hash, found := strings.Cut(s, string(cursorSep))
	if !found || ValidateWatermark(base) != nil {
		return Cursor{}, ErrBadCursor
	}
	if hash == "" {
		return Cursor{Base: base}, nil
	}
	if len(hash) != hashLen {
		return Cursor{}, ErrBadCursor
	}
	var raw [8]byte
	n, err := base64.RawURLEncoding.Strict().Decode(raw[:], []byte(hash))
	if err != nil || n != 8 {
		return Cursor{}, ErrBadCursor
	}
	return Cursor{Base: base, Hash: binary.BigEndian.Uint64(raw[:]), HasHash: true}, nil
}

// ValidateWatermark checks that a watermark is safe to put in an upstream
// URL and in an SSE id line (see upstream.ValidWatermark); it never holds
// '~', the cursor separator.
func ValidateWatermark(w string) error {
	if !upstream.ValidWatermark(w) {
		return ErrBadCursor
	}
	return nil
}
