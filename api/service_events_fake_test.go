package api

import (
	"context"

	"github.com/tako-run/tako/jobs"
)

// Begin runs the fake's Execute up front and hands its answer to run.
func (f *fakeService) Begin(ctx context.Context, sub jobs.Submission) (*jobs.Execution, func() (*jobs.Execution, error), error) {
	exec, err := f.Execute(ctx, sub)
	if err != nil {
		return nil, nil, err
	}
	return exec, func() (*jobs.Execution, error) { return exec, nil }, nil
}

// OutputSoFar has nothing: the fake's executions print nothing live.
func (f *fakeService) OutputSoFar(ctx context.Context, c jobs.Caller, id string) (jobs.OutputSoFar, error) {
	f.called(ctx, "OutputSoFar")
	if _, err := f.Get(ctx, c, id); err != nil {
		return jobs.OutputSoFar{}, err
	}
	return jobs.OutputSoFar{}, nil
}

// Events sends queued, and for an ended execution result and done.
func (f *fakeService) Events(ctx context.Context, c jobs.Caller, id, lastEventID string, emit func(jobs.Event) error) error {
	f.called(ctx, "Events")
	exec, err := f.Get(ctx, c, id)
	if err != nil {
		return err
	}
	evs := []jobs.Event{{ID: "0.0.0.0.0", Kind: jobs.EventQueued, Execution: exec}}
	if exec.Terminal() {
		evs = append(evs,
			jobs.Event{ID: "0.0.0.0.1", Kind: jobs.EventResult, Execution: exec},
			jobs.Event{ID: "0.0.0.0.3", Kind: jobs.EventDone, Execution: exec})
	}
	for _, ev := range evs {
		if err := emit(ev); err != nil {
			return err
		}
	}
	return nil
}

// Deliveries has none.
func (f *fakeService) Deliveries(ctx context.Context, c jobs.Caller, id string) ([]jobs.Delivery, error) {
	f.called(ctx, "Deliveries")
	if _, err := f.Get(ctx, c, id); err != nil {
		return nil, err
	}
	return []jobs.Delivery{}, nil
}

// RetryDelivery refuses: the fake's executions have no callback URL.
func (f *fakeService) RetryDelivery(ctx context.Context, c jobs.Caller, id string) error {
	f.called(ctx, "RetryDelivery")
	if _, err := f.Get(ctx, c, id); err != nil {
		return err
	}
	return jobs.Errorf(jobs.ECONFLICT, "the job has no callback_url")
}
