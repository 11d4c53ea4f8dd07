//go:build !unix

package netwatch

import "errors"

func readFD(uintptr, []byte) (int, error) {
	return 0, errors.ErrUnsupported
}
