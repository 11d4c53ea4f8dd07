package gateway

import "github.com/dlsse/dlsse/internal/tasks"

// streamSet counts the running streams so Shutdown can wait for them. It
// refuses new streams once closed, so one that starts during shutdown
// cannot race the wait (tasks.Group, under the names the stream handler
// uses).
type streamSet struct{ tasks.Group }

// add registers a stream; false once the set is closed.
func (s *streamSet) add() bool { return s.Add() }

func (s *streamSet) done() { s.Done() }
