package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/tako-run/tako/internal/loop"
	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobs/postgres"
)

// heartbeat tells the database, on a timer, that this node is alive: the
// maintenance leader ends the sync executions of nodes that stop saying
// so, since nobody else would finish them.
type heartbeat struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	store  *postgres.Store
	node   string
}

// startHeartbeat records the first heartbeat of node, then one every
// interval until stop.
func startHeartbeat(ctx context.Context, store *postgres.Store, node string, interval time.Duration, logger *slog.Logger) (*heartbeat, error) {
	if err := store.Heartbeat(ctx, node); err != nil {
		return nil, err
	}
	bctx, cancel := context.WithCancel(context.Background())
	h := &heartbeat{cancel: cancel, done: make(chan struct{}), store: store, node: node}
	go func() {
		defer close(h.done)
		loop.Every(bctx, interval, func() bool {
			cctx, stop := context.WithTimeout(bctx, interval)
			defer stop()
			if err := store.Heartbeat(cctx, node); err != nil && bctx.Err() == nil {
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

// sweepArgs is the periodic job that ends the sync executions of nodes
// that are gone.
type sweepArgs struct{}

// Kind implements river.JobArgs.
func (sweepArgs) Kind() string { return "tako_sweep_nodes" }

// sweepJob runs the sweep twice per node timeout, from the start.
func sweepJob(nodeTimeout time.Duration) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(max(nodeTimeout/2, time.Second)), func() (river.JobArgs, *river.InsertOpts) {
		return sweepArgs{}, nil
	}, &river.PeriodicJobOpts{RunOnStart: true})
}

// sweepWorker ends the sync executions still running on nodes gone silent
// (killed, or cut off from the database) for longer than the node
// timeout: their callers are gone with them, and no node will finish them.
type sweepWorker struct {
	river.WorkerDefaults[sweepArgs]
	s *Dispatcher
}

// Work implements river.Worker.
func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[sweepArgs]) error {
	ids, err := w.s.store.Stranded(ctx, w.s.opts.NodeTimeout)
	if err != nil {
		return err
	}
	for _, id := range ids {
		e, err := w.s.store.Get(ctx, jobs.System, id)
		if err != nil {
			return fmt.Errorf("get stranded execution: %w", err)
		}
		w.s.jobLogger(e).Warn("ending a sync execution whose node is gone", "node", e.Node)
		w.s.finish(e, &jobs.Result{Status: jobs.StatusFailed, ExitCode: -1, Error: &jobs.ExecError{
			Type: jobs.ErrInternal, Message: fmt.Sprintf("the node that ran the execution (%s) stopped before it finished", e.Node),
		}}, 0)
	}
	return nil
}
