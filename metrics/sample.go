package metrics

import (
	"context"
	"time"
)

// Sample calls probe at once and then every interval until ctx is done.
// Gauges that need I/O (Docker, the database, the queue) are kept fresh this
// way, so a scrape never waits on a query and scraping more often costs
// nothing.
func Sample(ctx context.Context, interval time.Duration, probe func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
