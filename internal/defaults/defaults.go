// Package defaults fills unset settings. Every Config in dlsse reads a zero
// or negative value as "the default"; one helper keeps that rule the same
// in every package.
package defaults

import "time"

// Set replaces a zero or negative *v with def.
func Set[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
