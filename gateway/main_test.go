package gateway_test

import (
	"testing"

	"github.com/gofiber/fiber/v2/utils"
	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// stream, session and upstream socket must be stopped by its owner.
//
// Process-wide goroutines of the libraries are exempt: fasthttp's worker
// pool cleaner (sleeps up to 10 s before it sees the server stopped), its
// Date header updater, and Fiber's timestamp updater (started once per
// process, by the rate limiter; started here first so it can be told
// apart). None holds a connection.
func TestMain(m *testing.M) {
	utils.StartTimeStampUpdater()
	goleak.VerifyTestMain(m,
		goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}
