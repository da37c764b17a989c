package jobtypes

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits maps the suffixes ParseSize accepts to their multiplier. Following
// Docker's convention, "k", "m" and "g" are binary units, so "512m" and
// "512MiB" mean the same number of bytes.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"k":   1 << 10,
	"kb":  1 << 10,
	"kib": 1 << 10,
	"m":   1 << 20,
	"mb":  1 << 20,
	"mib": 1 << 20,
	"g":   1 << 30,
	"gb":  1 << 30,
	"gib": 1 << 30,
	"t":   1 << 40,
	"tb":  1 << 40,
	"tib": 1 << 40,
}

// ParseSize parses a byte size such as "512m", "1g", "64KiB", "2MiB" or a
// plain number of bytes. Units are binary and case-insensitive; a fraction is
// allowed ("1.5g"). It returns an error for anything else, including negative
// sizes.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("malformed size %q (use a number with an optional unit: k, m, g, t, KiB, MiB, GiB)", s)
	}
	if !strings.Contains(num, ".") {
		// Whole numbers exactly: a float64 cannot hold every int64.
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/mult {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed size %q", s)
	}
	// float64(math.MaxInt64) is 2^63, which int64 cannot hold.
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(v), nil
}

// FormatSize renders n bytes in the largest binary unit that divides it
// exactly, so FormatSize(ParseSize("512m")) is "512MiB".
func FormatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
