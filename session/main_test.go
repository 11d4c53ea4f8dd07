package session

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a session, a follower or a Manager starts has an owner
// that ends it: none may outlive the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
