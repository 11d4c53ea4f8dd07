package upstream

import (
	"errors"
	"syscall"
)

// localResourceErrnos are what a socket or a dial fails with when this
// host, not Direct Line, ran out of something: file descriptors of the
// process (EMFILE) or of the system (ENFILE), socket buffers (ENOBUFS),
// kernel memory (ENOMEM).
var localResourceErrnos = [...]syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM}

// IsLocalResourceError reports whether err is this host running out of
// file descriptors, socket buffers or memory. Such a failure says nothing
// about Direct Line: the breaker does not count it, and the caller should
// retry with its normal backoff (by then a descriptor may be free).
func IsLocalResourceError(err error) bool {
	_, ok := localResourceErrno(err)
	return ok
}

// localResourceErrno returns the errno that makes err a local resource
// error.
func localResourceErrno(err error) (syscall.Errno, bool) {
	if err == nil {
		return 0, false
	}
	for _, errno := range localResourceErrnos {
		if errors.Is(err, errno) {
			return errno, true
		}
	}
	return 0, false
}

// noteLocalError tells Hooks.LocalResourceError about a call or dial that
// failed for lack of local resources. Only the errno is passed on: the
// rest of a dial error may quote the stream URL, which holds a token.
func (c *Client) noteLocalError(op string, err error) {
	errno, ok := localResourceErrno(err)
	if !ok {
		return
	}
	if h := c.cfg.Hooks.LocalResourceError; h != nil {
		h(op, errno)
	}
}
