package runner

import (
	"errors"

	"github.com/tako-run/tako/jobs"
)

func asError(err error, target **jobs.Error) bool { return errors.As(err, target) }
