package schedule

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/dustin/go-humanize"
)

// ErrNegativeSize is returned by ParseSize for a size below zero.
var ErrNegativeSize = errors.New("a size below 0")

// sizeRE is the form of a size that every command takes: a count, maybe
// decimal, and a unit that cannot be misread ("16m" is not a size).
var sizeRE = regexp.MustCompile(`^\d+(\.\d+)?\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$`)

// ParseSize parses a byte size: a count, or one with a unit (KiB, MiB,
// GiB, TiB are 1024-based, KB, MB, GB, TB 1000-based; 1.5GiB is allowed).
// It is the one size parser of the flags and job keys of every command.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("%q: %w", s, ErrNegativeSize)
	}
	if !sizeRE.MatchString(s) {
		return 0, fmt.Errorf("%q: expected a size such as 16MiB", s)
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || n > 1<<62 {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return int64(n), nil
}
