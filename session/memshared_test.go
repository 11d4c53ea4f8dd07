package session_test

import (
	"testing"

	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/session/sharedtest"
)

func TestMemorySharedConforms(t *testing.T) {
	sharedtest.Run(t, func(_ *testing.T, keep int) session.Shared { return session.NewMemoryShared(keep) })
}
