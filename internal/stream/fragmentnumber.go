package stream

import (
	"fmt"
	"strconv"
)

// FragmentNumber identifies a fragment. Internally it is a server-wide
// sequence that grows with arrival order; on the wire it is a 47-digit
// decimal string, the width real KVS fragment numbers have, so that clients
// which compare them as strings or as big integers both get arrival order.
type FragmentNumber uint64

// fragmentNumberPrefix makes every wire number 47 digits wide and keeps it
// clear of numbers a 64-bit integer could hold, as KVS's own numbers are.
const fragmentNumberPrefix = "9134"

// fragmentNumberDigits is the width of a wire fragment number.
const fragmentNumberDigits = 47

// String returns the wire form.
func (n FragmentNumber) String() string {
	return fmt.Sprintf("%s%0*d", fragmentNumberPrefix, fragmentNumberDigits-len(fragmentNumberPrefix), uint64(n))
}

// ParseFragmentNumber reads the wire form. Numbers Kinema did not issue are
// an error, which callers report as an invalid fragment number.
func ParseFragmentNumber(s string) (FragmentNumber, error) {
	if len(s) != fragmentNumberDigits || s[:len(fragmentNumberPrefix)] != fragmentNumberPrefix {
		return 0, fmt.Errorf("fragment number %q was not issued by this server", s)
	}
	v, err := strconv.ParseUint(s[len(fragmentNumberPrefix):], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("fragment number %q is not a decimal number", s)
	}
	return FragmentNumber(v), nil
}
