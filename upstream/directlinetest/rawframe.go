package directlinetest

import "errors"

// errNoSocket is returned by SendRaw for a conversation without a socket.
var errNoSocket = errors.New("directlinetest: conversation has no socket")

// SendRaw queues data, byte for byte, as one text message on convID's
// socket, after everything already queued there, as a misbehaving service
// would send it. It is for testing clients against frames Direct Line
// should never send (malformed JSON, unknown shapes, oversized messages):
// nothing is stored in the history, the watermark does not move, and a
// later socket never replays it. It fails for an unknown conversation and
// for one with no socket attached.
func (s *Server) SendRaw(convID string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.convs[convID]
	if !ok {
		return errUnknownConversation
	}
	if c.sock == nil {
		return errNoSocket
	}
	c.sock.send(append([]byte(nil), data...))
	return nil
}
