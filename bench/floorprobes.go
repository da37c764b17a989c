package bench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobs/postgres"
)

// hostPython is the host interpreter floor: one python3 process that does
// nothing, from fork to exit.
type hostPython struct {
	path string
}

// NewHostInterpreter returns the host interpreter floor, `python3 -c pass`
// with the python3 found on PATH, or nil when there is none. The python3
// on PATH may be a wrapper (pyenv's shims are shell scripts that add
// 70 ms): the floor runs the interpreter it starts, sys.executable.
func NewHostInterpreter() HostInterpreter {
	path, err := exec.LookPath("python3")
	if err != nil {
		return nil
	}
	out, err := exec.Command(path, "-c", "import sys; print(sys.executable)").Output()
	if real := strings.TrimSpace(string(out)); err == nil && real != "" {
		path = real
	}
	return hostPython{path: path}
}

// StartInterpreter runs python3 -c pass once and waits for it to exit.
func (h hostPython) StartInterpreter(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, h.path, "-c", "pass").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s -c pass: %w: %.200s", h.path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ExecutionStore is the part of the execution store the store floor uses;
// *postgres.Store satisfies it.
type ExecutionStore interface {
	Insert(ctx context.Context, q postgres.DBTX, e *jobs.Execution) (*jobs.Execution, error)
	Finish(ctx context.Context, q postgres.DBTX, c jobs.Caller, id string, res *jobs.Result, artifacts []jobs.ArtifactContent) (bool, error)
}

// storeFloor records sync jobs of one job type.
type storeFloor struct {
	store   ExecutionStore
	jobType string
}

// NewStoreFloor returns the store floor on store: RecordJob writes what
// the dispatcher writes for one sync print(1+1) of jobType, one insert of
// a running record and one finish. Give it a store whose records nobody
// else reads, such as postgres.OpenScratch's: the records stay.
func NewStoreFloor(store ExecutionStore, jobType string) JobRecorder {
	return storeFloor{store: store, jobType: jobType}
}

// RecordJob inserts a running sync execution and finishes it as
// succeeded, each in a round trip of its own, as a sync job does.
func (s storeFloor) RecordJob(ctx context.Context) error {
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("record id: %w", err)
	}
	e := &jobs.Execution{
		ID:           id.String(),
		Status:       jobs.StatusRunning,
		Mode:         jobs.ModeSync,
		JobType:      s.jobType,
		Code:         "print(1+1)",
		InputJSON:    []byte("{}"),
		Requirements: []string{},
		Timeout:      30 * time.Second,
		Attempt:      1,
		Node:         "tako-bench-floors",
	}
	if existing, err := s.store.Insert(ctx, nil, e); err != nil {
		return err
	} else if existing != nil {
		return errors.New("insert execution: a record without an idempotency key met an existing one")
	}
	res := &jobs.Result{
		Status:  jobs.StatusSucceeded,
		Stdout:  "2\n",
		Runtime: "runc",
		Start:   jobs.StartWarm,
		Timing:  jobs.Timing{Run: 5 * time.Millisecond, Total: 10 * time.Millisecond},
	}
	ok, err := s.store.Finish(ctx, nil, jobs.System, e.ID, res, nil)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("finish execution %s: it had already ended", e.ID)
	}
	return nil
}
