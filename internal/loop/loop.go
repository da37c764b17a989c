// Package loop runs work on a timer until it is told to stop: the one
// ticker loop tako's background workers share.
package loop

import (
	"context"
	"time"
)

// Every calls fn every interval, the first time one interval from now,
// until ctx is done or fn returns false. It returns when it stops.
func Every(ctx context.Context, interval time.Duration, fn func() bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !fn() {
				return
			}
		}
	}
}
