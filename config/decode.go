package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/v2"

	"github.com/tako-run/tako/jobtypes"
)

// decode turns the merged koanf tree into a Config. It is strict: a key the
// Config does not have is an error naming the key's full path, and so is a
// value that does not fit its key.
func decode(k *koanf.Koanf, root *node) (*Config, error) {
	// One copy of the tree serves both steps: koanf copies it on every read.
	tree := k.Raw()
	if errs := root.unknownKeys(tree, ""); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var cfg Config
	d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       decodeHook,
		ErrorUnused:      true,
		TagName:          "koanf",
		WeaklyTypedInput: true,
		// Keys are case-sensitive, as everywhere else in YAML.
		MatchName: func(mapKey, fieldName string) bool { return mapKey == fieldName },
		Result:    &cfg,
	})
	if err != nil {
		return nil, fmt.Errorf("config: decoder: %w", err)
	}
	if err := d.Decode(tree); err != nil {
		return nil, decodeErrors(err, root)
	}
	return &cfg, nil
}

// decodeErrors rewrites mapstructure's errors, which name Go-side paths such
// as "job_types[data].limits.memory", so that each names the koanf key.
func decodeErrors(err error, root *node) error {
	var out []error
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case *mapstructure.DecodeError:
			out = append(out, fmt.Errorf("config: %s: %w", root.keyOf(e.Name()), e.Unwrap()))
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			// mapstructure wraps its joined errors in a summary line.
			var de *mapstructure.DecodeError
			if errors.As(err, &de) {
				walk(e.Unwrap())
				return
			}
			out = append(out, fmt.Errorf("config: %w", err))
		default:
			out = append(out, fmt.Errorf("config: %w", err))
		}
	}
	walk(err)
	return errors.Join(out...)
}

// decodeHook converts sizes and durations; mapstructure's weak typing does
// the rest (numbers and booleans written as strings in the environment).
func decodeHook(from, to reflect.Type, data any) (any, error) {
	if from == to {
		return data, nil
	}
	switch to {
	case reflect.TypeFor[Size]():
		return parseSize(data)
	case reflect.TypeFor[Duration]():
		return parseDuration(data)
	case reflect.TypeFor[NetworkConfig]():
		return decodeNetwork(data)
	case reflect.TypeFor[HostPins]():
		return decodeHostPins(data)
	}
	// Weak typing would turn "FLAG: true" in a job type's env into "1".
	if b, ok := data.(bool); ok && to.Kind() == reflect.String {
		return strconv.FormatBool(b), nil
	}
	return data, nil
}

// parseSize accepts what jobtypes.ParseSize accepts ("512m", "2MiB") and a
// non-negative whole number of bytes.
func parseSize(data any) (Size, error) {
	if s, ok := data.(string); ok {
		n, err := jobtypes.ParseSize(s)
		return Size(n), err
	}
	v := reflect.ValueOf(data)
	switch {
	case v.CanInt():
		if v.Int() < 0 {
			return 0, fmt.Errorf("negative size %d", v.Int())
		}
		return Size(v.Int()), nil
	case v.CanUint():
		if v.Uint() > math.MaxInt64 {
			return 0, fmt.Errorf("size %d is too large", v.Uint())
		}
		return Size(v.Uint()), nil
	case v.CanFloat():
		f := v.Float()
		if f < 0 || f != math.Trunc(f) || f > math.MaxInt64 {
			return 0, fmt.Errorf("size %v is not a whole number of bytes", f)
		}
		return Size(f), nil
	}
	return 0, fmt.Errorf("expected a size such as 512m or 64KiB, got %T", data)
}

// parseDuration accepts a Go duration ("30s", "5m", "1h30m") or a number of
// seconds, written as a number or a string.
func parseDuration(data any) (Duration, error) {
	if s, ok := data.(string); ok {
		s = strings.TrimSpace(s)
		if d, err := time.ParseDuration(s); err == nil {
			return Duration(d), nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed duration %q (use a duration such as 30s, 5m or a number of seconds)", s)
		}
		return secondsDuration(f)
	}
	v := reflect.ValueOf(data)
	switch {
	case v.CanInt():
		return secondsDuration(float64(v.Int()))
	case v.CanUint():
		return secondsDuration(float64(v.Uint()))
	case v.CanFloat():
		return secondsDuration(v.Float())
	}
	return 0, fmt.Errorf("expected a duration such as 30s or 5m, got %T", data)
}

func secondsDuration(sec float64) (Duration, error) {
	d := sec * float64(time.Second)
	if math.IsNaN(d) || math.Abs(d) > math.MaxInt64 {
		return 0, fmt.Errorf("duration %v seconds is out of range", sec)
	}
	return Duration(d), nil
}
