package dsv3

import (
	"fmt"
	"math"
)

// The C side takes fixed-width integers; refuse values that would be
// truncated instead of passing them on silently.

func checkInt32(name string, v int) error {
	if v < math.MinInt32 || v > math.MaxInt32 {
		return fmt.Errorf("dsv3: %s=%d does not fit int32: %w", name, v, ErrInvalid)
	}
	return nil
}

func checkUint32(name string, v int) error {
	if v < 0 || int64(v) > math.MaxUint32 {
		return fmt.Errorf("dsv3: %s=%d does not fit uint32: %w", name, v, ErrInvalid)
	}
	return nil
}
