// Package ssetest is a small Server-Sent Events client for tests and
// benchmarks: it opens a stream over a real connection and parses events
// exactly as the HTML standard says a browser does.
package ssetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Event is one parsed event.
type Event struct {
	ID    string // the last id seen (as a browser's lastEventId)
	HasID bool   // whether this event carried an id field itself
	Name  string // "message" when the event had no event field
	Data  string
}

// Stream is an open SSE response.
type Stream struct {
	Resp     *http.Response
	r        *bufio.Reader
	lastID   atomic.Pointer[string]
	retry    atomic.Int64 // the last retry hint seen, in ms
	retryMu  sync.Mutex
	retries  []time.Duration // every retry hint seen, in order
	comments atomic.Int64    // comment lines seen (heartbeats)
	events   chan result
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
}

// Retry is the last retry hint the server sent.
func (s *Stream) Retry() time.Duration { return time.Duration(s.retry.Load()) * time.Millisecond }

// Retries is every retry hint the server sent, in order: a stream's
// opening hint and the one it ends with are told apart.
func (s *Stream) Retries() []time.Duration {
	s.retryMu.Lock()
	defer s.retryMu.Unlock()
	return append([]time.Duration(nil), s.retries...)
}

// Comments is how many comment lines (heartbeats) arrived.
func (s *Stream) Comments() int64 { return s.comments.Load() }

type result struct {
	ev  Event
	err error
}

// Open issues GET url with headers and returns the stream when the answer
// is 200 text/event-stream; otherwise the response is returned with an
// error, its body read into the error text.
func Open(ctx context.Context, url string, header http.Header) (*Stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		cancel()
		return nil, &StatusError{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
	}
	s := &Stream{Resp: resp, r: bufio.NewReader(resp.Body), events: make(chan result, 64), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	s.lastID.Store(new(string))
	go s.readLoop()
	return s, nil
}

// StatusError is a stream request answered with something else than an
// event stream.
type StatusError struct {
	Status int
	Header http.Header
	Body   string
}

func (e *StatusError) Error() string { return fmt.Sprintf("status %d: %s", e.Status, e.Body) }

// ErrEOF reports that the server ended the stream.
var ErrEOF = errors.New("ssetest: stream ended")

// Next returns the next event, or an error when the stream ended (ErrEOF)
// or ctx did.
func (s *Stream) Next(ctx context.Context) (Event, error) {
	select {
	case r, ok := <-s.events:
		if !ok {
			return Event{}, ErrEOF
		}
		return r.ev, r.err
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// NextNamed returns the next event with the given name, skipping others.
func (s *Stream) NextNamed(ctx context.Context, name string) (Event, error) {
	for {
		ev, err := s.Next(ctx)
		if err != nil || ev.Name == name {
			return ev, err
		}
	}
}

// LastEventID is what a browser would send as Last-Event-ID now.
func (s *Stream) LastEventID() string { return *s.lastID.Load() }

// Close ends the stream and waits for its reader.
func (s *Stream) Close() {
	s.cancel()
	s.Resp.Body.Close()
	<-s.done
}

func (s *Stream) readLoop() {
	defer close(s.done)
	defer close(s.events)
	var ev Event
	var data strings.Builder
	hasData := false
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if hasData {
				ev.Data = data.String()
				ev.ID = s.LastEventID()
				if ev.Name == "" {
					ev.Name = "message"
				}
				select {
				case s.events <- result{ev: ev}:
				case <-s.ctx.Done():
					return
				}
			}
			ev, hasData = Event{}, false
			data.Reset()
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			s.comments.Add(1)
		case "event":
			ev.Name = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				s.lastID.Store(&value)
				ev.HasID = true
			}
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil {
				s.retry.Store(int64(ms))
				s.retryMu.Lock()
				s.retries = append(s.retries, time.Duration(ms)*time.Millisecond)
				s.retryMu.Unlock()
			}
		}
	}
}
