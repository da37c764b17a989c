package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tako-run/tako/internal/loop"
	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobs/postgres"
)

// heartbeat calls beat on a timer: each beat tells the database this node
// is alive and learns what the others run (Dispatcher.beat). The
// maintenance leader takes the work of nodes that stop beating.
type heartbeat struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	store  *postgres.Store
	node   string
}

// startHeartbeat beats once, then every interval until stop.
func startHeartbeat(ctx context.Context, store *postgres.Store, node string, interval time.Duration, beat func(context.Context) error, logger *slog.Logger) (*heartbeat, error) {
	if err := beat(ctx); err != nil {
		return nil, err
	}
	bctx, cancel := context.WithCancel(context.Background())
	h := &heartbeat{cancel: cancel, done: make(chan struct{}), store: store, node: node}
	go func() {
		defer close(h.done)
		loop.Every(bctx, interval, func() bool {
			cctx, stop := context.WithTimeout(bctx, interval)
			defer stop()
			if err := beat(cctx); err != nil && bctx.Err() == nil {
				logger.Warn("heartbeat", "error", err)
			}
			return true
		})
	}()
	return h, nil
}

// stop ends the heartbeats and forgets the node: it stopped cleanly. It is
// idempotent.
func (h *heartbeat) stop() {
	h.once.Do(func() {
		h.cancel()
		<-h.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.store.RemoveNode(ctx, h.node)
	})
}

// beat records this node's heartbeat with the job types it can run now,
// refreshes what the live nodes run, and stops the attempts this node no
// longer holds: those the leader took while the node was silent (paused,
// or cut off from the database).
func (s *Dispatcher) beat(ctx context.Context) error {
	if err := s.store.Heartbeat(ctx, postgres.Node{ID: s.opts.Node, Role: s.role(), JobTypes: s.runnable()}); err != nil {
		return err
	}
	live, err := s.store.LiveRunners(ctx, s.opts.NodeTimeout)
	if err != nil {
		return err
	}
	s.live.set(live)
	taken, err := s.store.Taken(ctx, s.opts.Node, s.held.snapshot())
	if err != nil {
		return err
	}
	for _, id := range taken {
		s.held.stop(id)
	}
	return nil
}

// role is what this node says it is in the heartbeat: "api" when it runs
// no jobs, else its configured role.
func (s *Dispatcher) role() string {
	if s.runner == nil {
		return "api"
	}
	if s.opts.Role == "" {
		return "all"
	}
	return s.opts.Role
}

// runnable returns the job types this node serves and can run now.
func (s *Dispatcher) runnable() []string {
	var out []string
	for _, jt := range s.registry.All() {
		if s.serves(jt.Name) && s.runner.Availability(jt).Available {
			out = append(out, jt.Name)
		}
	}
	return out
}

// serves reports whether this node runs jobs of jobType: it has a runner,
// and worker.job_types is empty or names it.
func (s *Dispatcher) serves(jobType string) bool {
	if s.runner == nil {
		return false
	}
	return len(s.opts.JobTypes) == 0 || slices.Contains(s.opts.JobTypes, jobType)
}

// liveRunners is what the last heartbeat learnt: how many live nodes run
// each job type.
type liveRunners struct {
	mu sync.RWMutex
	n  map[string]int
}

func (l *liveRunners) set(n map[string]int) {
	l.mu.Lock()
	l.n = n
	l.mu.Unlock()
}

// any reports whether any live node runs jobs.
func (l *liveRunners) any() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.n) > 0
}

// count returns how many live nodes run jobType.
func (l *liveRunners) count(jobType string) int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.n[jobType]
}

// errTaken ends an attempt whose execution the leader took from this node
// while it was silent: its result must not be written.
var errTaken = errors.New("the execution was taken from this node, silent for longer than cluster.node_timeout, and runs again elsewhere")

// heldAttempts are the executions this node runs, each with its attempt
// and the cancel of its context.
type heldAttempts struct {
	mu sync.Mutex
	m  map[string]heldAttempt
}

type heldAttempt struct {
	attempt int
	cancel  context.CancelCauseFunc
}

// hold records that this node runs attempt of execution id, and returns
// ctx, which errTaken cancels when the execution is taken, and the release
// to call when the attempt ends.
func (h *heldAttempts) hold(ctx context.Context, id string, attempt int) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	h.mu.Lock()
	if h.m == nil {
		h.m = map[string]heldAttempt{}
	}
	h.m[id] = heldAttempt{attempt: attempt, cancel: cancel}
	h.mu.Unlock()
	return ctx, func() {
		h.mu.Lock()
		if a, ok := h.m[id]; ok && a.attempt == attempt {
			delete(h.m, id)
		}
		h.mu.Unlock()
		cancel(nil)
	}
}

// snapshot returns the held executions and their attempts.
func (h *heldAttempts) snapshot() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.m))
	for id, a := range h.m {
		out[id] = a.attempt
	}
	return out
}

// stop cancels the attempt of execution id with errTaken.
func (h *heldAttempts) stop(id string) {
	h.mu.Lock()
	a, ok := h.m[id]
	h.mu.Unlock()
	if ok {
		a.cancel(errTaken)
	}
}

// taken reports whether ctx, an attempt's context, ended because its
// execution was taken.
func taken(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errTaken)
}

// sweepArgs is the periodic job that takes the work of nodes gone silent.
type sweepArgs struct{}

// Kind implements river.JobArgs.
func (sweepArgs) Kind() string { return "tako_sweep_nodes" }

// sweepJob runs the sweep three times per node timeout, from the start,
// so that a silent node's work moves within about 1.3 node timeouts.
func sweepJob(nodeTimeout time.Duration) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(max(nodeTimeout/3, time.Second)), func() (river.JobArgs, *river.InsertOpts) {
		return sweepArgs{}, nil
	}, &river.PeriodicJobOpts{RunOnStart: true})
}

// sweepWorker takes the running executions of nodes gone silent (killed,
// paused, or cut off from the database) for longer than the node timeout:
// a queued one (async, or sync through an api node) goes back to the
// queue, counted as an attempt, or to the dead-letter queue after its
// last; a sync one run where it was received ends with an infrastructure
// error, since its caller went with the node. A node that was only slow
// finds them taken at its next heartbeat and writes nothing.
type sweepWorker struct {
	river.WorkerDefaults[sweepArgs]
	s *Dispatcher
}

// Work implements river.Worker.
func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[sweepArgs]) error {
	stranded, err := w.s.store.Stranded(ctx, w.s.opts.NodeTimeout)
	if err != nil {
		return err
	}
	for _, st := range stranded {
		if err := w.s.rescue(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

// rescue takes st from its silent node.
func (s *Dispatcher) rescue(ctx context.Context, st postgres.Stranded) error {
	e, err := s.store.Get(ctx, jobs.System, st.ID)
	if err != nil {
		return fmt.Errorf("get stranded execution: %w", err)
	}
	e.Node, e.Attempt = st.Holder.Node, st.Holder.Attempt
	log := s.jobLogger(e).With("node", st.Holder.Node, "attempt", st.Holder.Attempt)
	gone := fmt.Sprintf("the node that ran the execution (%s) went silent for longer than cluster.node_timeout (%s)", st.Holder.Node, s.opts.NodeTimeout)
	if st.RiverJobID == 0 {
		log.Warn("ending a sync execution whose node is gone")
		_, err := s.finish(e, infrastructureFailure(gone+" before it finished"), 0)
		return err
	}
	var last bool
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		a, ok, err := s.store.EndRiverAttempt(ctx, tx, st.RiverJobID, gone)
		if err != nil || !ok {
			return err
		}
		if last = a.Last; last {
			return nil
		}
		args, err := nextAttemptArgs(a)
		if err != nil {
			return err
		}
		res, err := s.river.InsertTx(ctx, tx, args, &river.InsertOpts{
			MaxAttempts: a.MaxAttempts - a.Attempt,
			Priority:    a.Priority,
			Queue:       a.Queue,
		})
		if err != nil {
			return fmt.Errorf("queue the next attempt: %w", err)
		}
		moved, err := s.store.RequeueHeld(ctx, tx, st.ID, st.Holder, res.Job.ID)
		if err != nil {
			return err
		}
		if !moved {
			return errNotHeld
		}
		log.Warn("execution taken from a silent node; queued again", "river_job", res.Job.ID)
		return nil
	})
	if errors.Is(err, errNotHeld) {
		return nil // it ended or moved meanwhile
	}
	if err != nil {
		return fmt.Errorf("rescue execution %s: %w", st.ID, err)
	}
	if last {
		log.Error("execution's node went silent on its last attempt; giving up")
		_, err := s.finish(e, infrastructureFailure(gone+" on its last attempt"), 0)
		return err
	}
	return nil
}

// errNotHeld rolls back a rescue whose execution is no longer held by the
// silent node.
var errNotHeld = errors.New("execution no longer held")

// nextAttemptArgs are the arguments of the queue job that continues the
// job a's attempts: the same execution, with a's attempts counted.
func nextAttemptArgs(a postgres.RiverAttempt) (executeArgs, error) {
	var args executeArgs
	if err := json.Unmarshal(a.Args, &args); err != nil {
		return args, fmt.Errorf("read queue job args: %w", err)
	}
	args.PriorAttempts += a.Attempt
	return args, nil
}

// infrastructureFailure is a result that failed for a reason of tako's own,
// told in message.
func infrastructureFailure(message string) *jobs.Result {
	return &jobs.Result{Status: jobs.StatusFailed, ExitCode: -1, Error: &jobs.ExecError{Type: jobs.ErrInternal, Message: message}}
}
