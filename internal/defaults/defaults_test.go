package defaults_test

import (
	"testing"
	"time"

	"github.com/dlsse/dlsse/internal/defaults"
)

func TestSetFillsOnlyUnsetValues(t *testing.T) {
	for _, tt := range []struct{ in, want time.Duration }{
		{0, time.Second},
		{-time.Millisecond, time.Second},
		{time.Millisecond, time.Millisecond},
	} {
		v := tt.in
		defaults.Set(&v, time.Second)
		if v != tt.want {
			t.Errorf("Set(%v, 1s) = %v, want %v", tt.in, v, tt.want)
		}
	}
	n := 3
	defaults.Set(&n, 7)
	if n != 3 {
		t.Errorf("Set(3, 7) = %d: a set value was replaced", n)
	}
}
