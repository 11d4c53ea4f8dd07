//go:build unix

package netwatch

import (
	"syscall"
	"unsafe"
)

// readFD reads a non-blocking descriptor. A raw system call: it never
// waits, so telling the scheduler (entersyscall, exitsyscall) would only
// add work, and keep sysmon busy.
func readFD(fd uintptr, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(ptr), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
