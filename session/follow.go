package session

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Following: every replica with subscribers of a conversation keeps a
// replay log of its own, which its subscribers read. The owner appends
// what it reads from Direct Line to the shared journal and to its own log;
// the others apply the journal's records as the bus announces them. A
// record that does not follow the last one applied is a gap: the records
// missed are read from the journal, and when the journal no longer has
// them, fetched from Direct Line. Activities are deduplicated by id
// whichever way they come, so every log holds each activity once.

// follow subscribes the session to the conversation's bus. Only with
// other replicas.
func (s *Session) follow() {
	stop, err := s.m.shared.Bus.Follow(s.id, s.m.cfg.Replica, s.onMessage, s.onGap)
	if err != nil {
		s.lg().Warn().Err(err).Msg("cannot follow the conversation's bus")
		return
	}
	s.own.Lock()
	s.unfollow = stop
	s.own.Unlock()
}

// loadJournal fills the log with the journal's newest records: what a
// replica that joins a conversation others already stream starts from.
// It reports whether the journal gave the log a starting point.
func (s *Session) loadJournal() bool {
	ctx, cancel := context.WithTimeout(s.ctx, leaseCallTimeout)
	snap, err := s.m.shared.Journal.Tail(ctx, s.id, s.m.cfg.ReplayBuffer)
	cancel()
	if err != nil {
		s.lg().Warn().Err(err).Msg("cannot read the conversation's journal")
		return false
	}
	if snap.Status.State != "" {
		s.setLocalStatus(snap.Status)
	}
	recs, wm := snap.Records, snap.Watermark
	if len(recs) == 0 && wm == "" {
		return false
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if len(recs) > 0 {
		// The log starts just before the first record kept.
		s.log.Append(nil, recs[0].Entry.Base)
		s.applyLocked(recs, wm)
		s.journalPos = recs[len(recs)-1].Pos
	} else {
		s.log.Append(nil, wm)
	}
	s.baselined = true
	return true
}

// onMessage applies what another replica announced. It runs on the bus's
// delivery goroutine for this session, one message at a time.
func (s *Session) onMessage(m Message) {
	switch m.Kind {
	case KindAppended:
		s.applyMu.Lock()
		s.applyAppendedLocked(m)
		s.applyMu.Unlock()
	case KindEphemeral:
		if s.owning() == nil {
			s.applyMu.Lock()
			s.log.Append([]Entry{m.Entry}, "")
			s.applyMu.Unlock()
			s.notify()
		}
	case KindStatus:
		if s.owning() == nil {
			s.setLocalStatus(m.Status)
		}
	case KindReleased:
		s.retryLeaseIn(rand.N(releasedJitter))
	case KindRefreshed:
		s.carryAccessKey(m.Token, m.Expires)
	case KindSender:
		s.m.senders.note(s.id, m.Sender, time.Now())
	case KindEnded:
		s.lg().Info().Msg("the conversation ended (told by its owner)")
		s.setLocalStatus(m.Status)
		if m.Status.State == StateEnded {
			s.m.markEnded(s.id)
		}
		s.endWith(ErrEnded, m.Terminal)
	}
}

// applyAppendedLocked applies an append: at once when it follows what the
// log holds, after a repair when records were missed. applyMu is held.
func (s *Session) applyAppendedLocked(m Message) {
	first := m.Pos.Offset - uint64(len(m.Records)) + 1
	last := s.journalPos
	switch {
	case m.Pos.Epoch == last.Epoch && m.Pos.Offset <= last.Offset:
		return // applied already (a repair read it)
	case m.Pos.Epoch == last.Epoch && first == last.Offset+1,
		last.Epoch == "" && first == 1:
	default:
		if e := s.lg().Debug(); e.Enabled() {
			e.Str("have", last.String()).Str("got", m.Pos.String()).Int("records", len(m.Records)).Msg("journal gap: repairing")
		}
		s.repairLocked(m.Pos)
	}
	s.applyLocked(m.Records, m.Watermark)
	s.journalPos = m.Pos
}

// applyLocked appends records to the log, but activities it holds already,
// and wakes the subscribers. applyMu is held.
func (s *Session) applyLocked(recs []Record, watermark string) {
	entries := make([]Entry, 0, len(recs))
	for i := range recs {
		e := recs[i].Entry
		if e.Durable && s.log.Contains(e.Hash) {
			continue
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 && (watermark == "" || watermark == s.log.Watermark()) {
		return
	}
	s.log.Append(entries, watermark)
	s.m.cfg.Observer.ActivitiesReceived(len(entries))
	s.notify()
}

// repairLocked brings the log up to journal position upTo: the records in
// between from the journal, or, when the journal lost them (trimmed, Redis
// restarted or flushed), what Direct Line has after the log's watermark.
// applyMu is held.
func (s *Session) repairLocked(upTo Position) {
	for s.journalPos.Epoch == upTo.Epoch && s.journalPos.Offset < upTo.Offset {
		ctx, cancel := context.WithTimeout(s.ctx, leaseCallTimeout)
		recs, err := s.m.shared.Journal.Read(ctx, s.id, s.journalPos, s.m.cfg.ReplayBuffer)
		cancel()
		if err != nil || len(recs) == 0 {
			break
		}
		s.applyLocked(recs, "")
		s.journalPos = recs[len(recs)-1].Pos
	}
	if s.journalPos.Epoch == upTo.Epoch && s.journalPos.Offset+1 >= upTo.Offset {
		return
	}
	s.m.cfg.Observer.Replay(false)
	if err := s.pollLocked(); err != nil {
		s.lg().Warn().Err(err).Msg("cannot fetch what the journal lost from Direct Line; subscribers resume by cursor")
	}
	s.journalPos = Position{Epoch: upTo.Epoch, Offset: upTo.Offset - 1}
}

// pollLocked appends what Direct Line has after the log's watermark, as
// the replica's own read (nothing goes to the journal). applyMu is held.
func (s *Session) pollLocked() error {
	ctx, cancel := context.WithTimeout(s.ctx, leaseCallTimeout)
	defer cancel()
	set, err := s.m.up.Activities(ctx, s.upstreamCredential(), s.id, s.log.Watermark())
	if err != nil {
		return err
	}
	entries, wm, _ := s.entriesOf(set)
	if len(entries) == 0 && (wm == "" || wm == s.log.Watermark()) {
		return nil
	}
	markLocal(entries)
	s.log.Append(entries, wm)
	s.m.cfg.Observer.ActivitiesReceived(len(entries))
	s.notify()
	return nil
}

// onGap runs when messages may have been missed (the connection to the
// store broke and came back): the log catches up with the journal.
func (s *Session) onGap() {
	if s.owning() != nil {
		return // the owner's log is what it read itself
	}
	ctx, cancel := context.WithTimeout(s.ctx, leaseCallTimeout)
	snap, err := s.m.shared.Journal.Tail(ctx, s.id, 1)
	cancel()
	recs := snap.Records
	if err == nil && snap.Status.State != "" {
		s.setLocalStatus(snap.Status)
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	switch {
	case err != nil:
		return // still unreachable: the next gap comes
	case len(recs) == 0:
		// The journal starts over: Direct Line says what was missed.
		_ = s.pollLocked()
		s.journalPos = Position{}
	default:
		head := recs[0].Pos
		if head.Epoch == s.journalPos.Epoch && head.Offset <= s.journalPos.Offset {
			return
		}
		s.repairLocked(Position{Epoch: head.Epoch, Offset: head.Offset + 1})
		s.applyLocked(recs, "")
		s.journalPos = head
	}
}

// ensureBaseline makes a following session usable: its log needs a
// starting point, which the journal gives, or else Direct Line ("now").
func (s *Session) ensureBaseline() {
	select {
	case <-s.ready:
		return
	default:
	}
	if s.baselined || s.log.Watermark() != "" { // the journal, or the bus, gave it one
		s.markReady(nil)
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, leaseCallTimeout)
	defer cancel()
	err := s.ensureWatermark(ctx, nil)
	if err != nil && !errors.Is(err, context.Canceled) {
		s.markReady(classify(err))
		s.m.retire(s, true)
	}
}

// markLocal marks entries fetched from Direct Line by this replica alone.
func markLocal(entries []Entry) {
	for i := range entries {
		entries[i].Local = true
	}
}

// shareLocal puts in the journal what this replica fetched from Direct Line
// by itself while it followed (repairs, its first poll), at the start of
// its tenure: what it reads from now on continues after its log, which the
// other replicas' logs must hold too.
func (s *Session) shareLocal(o *ownership) error {
	if !s.m.clustered {
		return nil
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	local := s.log.Local()
	if len(local) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(o.ctx, leaseCallTimeout)
	defer cancel()
	pos, err := s.m.shared.Journal.Append(ctx, o.lease, local, s.log.Watermark())
	if err != nil {
		return err
	}
	s.log.Shared()
	s.journalPos = pos
	return nil
}
