package images

import (
	"errors"
	"fmt"

	"github.com/docker/docker/client"
)

// UnreachableError is returned when the Docker engine cannot be reached at
// all. Its message is one sentence telling the user what to do.
type UnreachableError struct {
	Err error // the client's own error
}

// Error implements error.
func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the Docker engine (%v); start Docker or set DOCKER_HOST", e.Err)
}

// Unwrap returns the client's error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// IsUnreachable reports whether err, or an error it wraps, says the Docker
// engine could not be reached.
func IsUnreachable(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u) || (err != nil && client.IsErrConnectionFailed(err))
}

// public turns an error on its way out of the package into what the caller
// should see: a failed connection to the engine becomes an UnreachableError,
// whose one sentence replaces the context it was wrapped in.
func public(err error) error {
	if err == nil {
		return nil
	}
	var u *UnreachableError
	if errors.As(err, &u) {
		return u
	}
	if client.IsErrConnectionFailed(err) {
		return &UnreachableError{Err: innermost(err)}
	}
	return err
}

// innermost returns the deepest error err wraps (following single Unwrap
// only), which for a connection failure is the client's message.
func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
