package runner

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
)

// eventStream is a fake engine event stream: each subscription gets the
// next channel pair.
type eventStream struct {
	subs chan chan events.Message
	errs chan chan error
}

func (e *eventStream) Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error) {
	if got := opts.Filters.Get("event"); len(got) != 1 || got[0] != "oom" {
		panic("follow must subscribe to oom events only")
	}
	return <-e.subs, <-e.errs
}

func TestOOMsFollowEventsAcrossBrokenStreams(t *testing.T) {
	src := &eventStream{subs: make(chan chan events.Message, 2), errs: make(chan chan error, 2)}
	first, firstErr := make(chan events.Message), make(chan error, 1)
	second, secondErr := make(chan events.Message), make(chan error, 1)
	src.subs <- first
	src.errs <- firstErr
	src.subs <- second
	src.errs <- secondErr

	o := newOOMs()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.follow(ctx, src, "inst", slog.New(slog.DiscardHandler))
	}()
	first <- events.Message{Actor: events.Actor{ID: "a"}}
	firstErr <- errors.New("daemon restarted")
	second <- events.Message{Actor: events.Actor{ID: "b"}} // after the resubscription
	cancel()
	<-done
	if !o.killed("a") || !o.killed("b") || o.killed("c") {
		t.Errorf("killed a=%v b=%v c=%v, want true true false", o.killed("a"), o.killed("b"), o.killed("c"))
	}
}

func TestOOMsForgetOldEvents(t *testing.T) {
	o := newOOMs()
	now := time.Now()
	o.record("old", now.Add(-2*time.Hour))
	o.record("new", now)
	if o.killed("old") || !o.killed("new") {
		t.Errorf("old=%v new=%v, want false true", o.killed("old"), o.killed("new"))
	}
}
