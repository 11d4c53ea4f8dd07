package gateway_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// stream, session and upstream socket must be stopped by its owner.
//
// Two fasthttp goroutines are exempt: the worker pool's cleaner sleeps up
// to 10 s before it sees the server stopped, and the Date header updater is
// process-wide by design. Neither holds a connection.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}
