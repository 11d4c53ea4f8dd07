package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/rueidis"

	"github.com/dlsse/dlsse/session"
)

func (r *Redis) Append(ctx context.Context, l session.Lease, entries []session.Entry, watermark string) (session.Position, error) {
	tail, blobs := appendedTail(l.Holder, watermark, entries)
	args := make([]string, 0, 7+len(blobs))
	args = append(args, leaseValue(l), watermark, strconv.Itoa(r.cfg.Keep), ms(r.cfg.IdleTTL),
		r.channel(l.Conversation), newEpoch(), string(tail))
	args = append(args, blobs...)
	res, err := r.run(ctx, "append", appendScript,
		[]string{r.key(l.Conversation, "lease"), r.key(l.Conversation, "log"), r.key(l.Conversation, "meta")},
		args).ToArray()
	if isNotOwner(err) {
		return session.Position{}, session.ErrNotOwner
	}
	if err != nil {
		return session.Position{}, fmt.Errorf("cluster: append: %w", err)
	}
	if len(res) != 2 {
		return session.Position{}, fmt.Errorf("cluster: append: unexpected answer")
	}
	epoch, err1 := res[0].ToString()
	last, err2 := res[1].AsInt64()
	if err1 != nil || err2 != nil {
		return session.Position{}, fmt.Errorf("cluster: append: unexpected answer")
	}
	return session.Position{Epoch: epoch, Offset: uint64(last)}, nil
}

// newEpoch names a journal that starts (over).
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (r *Redis) Read(ctx context.Context, conversationID string, after session.Position, n int) ([]session.Record, error) {
	res := r.run(ctx, "read", readScript,
		[]string{r.key(conversationID, "log"), r.key(conversationID, "meta")},
		[]string{strconv.FormatUint(after.Offset, 10), strconv.Itoa(n)})
	epoch, last, _, recs, _, err := journalAnswer(res)
	if err != nil {
		return nil, fmt.Errorf("cluster: read: %w", err)
	}
	if epoch != after.Epoch || after.Offset > last {
		return nil, session.ErrGap
	}
	if after.Offset < last && (len(recs) == 0 || recs[0].Pos.Offset != after.Offset+1) {
		return nil, session.ErrGap // trimmed
	}
	return recs, nil
}

func (r *Redis) Tail(ctx context.Context, conversationID string, n int) (session.Snapshot, error) {
	res := r.run(ctx, "tail", tailScript,
		[]string{r.key(conversationID, "log"), r.key(conversationID, "meta")},
		[]string{strconv.Itoa(n)})
	_, _, wm, recs, st, err := journalAnswer(res)
	if err != nil {
		return session.Snapshot{}, fmt.Errorf("cluster: tail: %w", err)
	}
	slices.Reverse(recs) // XREVRANGE: newest first
	return session.Snapshot{Records: recs, Watermark: wm, Status: st}, nil
}

// journalAnswer decodes what readScript and tailScript return.
func journalAnswer(res rueidis.RedisResult) (epoch string, last uint64, wm string, recs []session.Record, st session.Status, err error) {
	parts, err := res.ToArray()
	if err != nil {
		return "", 0, "", nil, st, err
	}
	if len(parts) < 4 {
		return "", 0, "", nil, st, errMalformed
	}
	epoch, _ = parts[0].ToString()
	lastText, _ := parts[1].ToString()
	last, _ = strconv.ParseUint(lastText, 10, 64)
	wm, _ = parts[2].ToString()
	entries, err := parts[3].AsXRange()
	if err != nil {
		return "", 0, "", nil, st, err
	}
	recs = make([]session.Record, 0, len(entries))
	for _, x := range entries {
		off, ok := strings.CutPrefix(x.ID, "0-")
		offset, perr := strconv.ParseUint(off, 10, 64)
		e, derr := decodeEntry([]byte(x.FieldValues["e"]))
		if !ok || perr != nil || derr != nil {
			return "", 0, "", nil, st, errMalformed
		}
		recs = append(recs, session.Record{Pos: session.Position{Epoch: epoch, Offset: offset}, Entry: e})
	}
	if len(parts) > 4 {
		if blob, _ := parts[4].ToString(); blob != "" {
			if _, m, err := decodeMessage(blob); err == nil {
				st = m.Status
			}
		}
	}
	return epoch, last, wm, recs, st, nil
}
