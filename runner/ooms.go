package runner

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// ooms remembers which of this instance's containers the engine reported
// out of memory. Docker 20.10 sets State.OOMKilled only when the runtime's
// out-of-memory event reaches it before the exit, and under gVisor, or on a
// loaded machine, the exit often comes first: the "oom" event in the
// engine's event stream arrives either way.
type ooms struct {
	mu   sync.Mutex
	seen map[string]time.Time // container id -> when the event came
}

func newOOMs() *ooms { return &ooms{seen: map[string]time.Time{}} }

// killed reports whether the engine reported container id out of memory.
func (o *ooms) killed(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.seen[id]
	return ok
}

// record notes an out-of-memory event for id, and forgets events older
// than an hour: their containers are long gone.
func (o *ooms) record(id string, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen[id] = at
	for k, t := range o.seen {
		if at.Sub(t) > time.Hour {
			delete(o.seen, k)
		}
	}
}

// eventSource is the part of the Docker client follow needs.
type eventSource interface {
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
}

// follow records the "oom" events of instance's containers until ctx ends,
// subscribing again after the stream breaks (the daemon restarted).
func (o *ooms) follow(ctx context.Context, docker eventSource, instance string, logger *slog.Logger) {
	args := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("event", string(events.ActionOOM)),
		filters.Arg("label", LabelInstance+"="+instance),
	)
	for ctx.Err() == nil {
		msgs, errs := docker.Events(ctx, events.ListOptions{Filters: args})
	stream:
		for {
			select {
			case m := <-msgs:
				o.record(m.Actor.ID, time.Now())
			case err := <-errs:
				if ctx.Err() == nil {
					logger.Warn("follow the engine's out-of-memory events", "error", err)
				}
				break stream
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
