package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobs/postgres"
)

// pollInterval bounds how long a waiter can miss a notification, for
// example while the listening connection reconnects.
const pollInterval = time.Second

// Wait returns the execution once it has ended, or ETIMEOUT after timeout;
// ENOTFOUND when c may not see it. It works whichever node runs the job: it
// listens for the database's notification and, on each one (and every
// pollInterval), reads only the execution's status; the whole record is
// read once, when it has ended.
func (s *Dispatcher) Wait(ctx context.Context, c jobs.Caller, id string, timeout time.Duration) (*jobs.Execution, error) {
	done, unsubscribe := s.notifier.subscribe(id, postgres.NotifyChannel)
	defer unsubscribe()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	for {
		st, err := s.store.Status(ctx, c, id)
		if err != nil {
			return nil, s.dbError("read status", err)
		}
		if st.Terminal() {
			return s.Get(ctx, c, id)
		}
		select {
		case <-done:
		case <-poll.C:
		case <-deadline.C:
			return nil, jobs.Errorf(jobs.ETIMEOUT, "Timeout waiting for job")
		case <-ctx.Done():
			// A caller's deadline that fires with the timer is the same
			// timeout; only a cancelled context is the server going away.
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, jobs.Errorf(jobs.ETIMEOUT, "Timeout waiting for job")
			}
			return nil, jobs.Errorf(jobs.EUNAVAILABLE, "server is shutting down")
		}
	}
}

// notifier holds one connection that LISTENs for finished executions and
// for their live output, and wakes the waiters of each. It reconnects by
// itself.
type notifier struct {
	logger *slog.Logger
	pool   *pgxpool.Pool

	mu      sync.Mutex
	waiters map[notice]map[chan struct{}]struct{}

	cancel context.CancelFunc
	done   chan struct{}
}

func newNotifier(pool *pgxpool.Pool, logger *slog.Logger) *notifier {
	return &notifier{logger: logger, pool: pool, waiters: map[notice]map[chan struct{}]struct{}{}}
}

// notice is one notification a waiter waits for: a channel, and the
// execution id its payload names.
type notice struct{ channel, id string }

// notifyChannels are the channels the notifier listens on.
var notifyChannels = []string{postgres.NotifyChannel, postgres.OutputChannel}

// subscribe returns a channel that receives whenever a notification on
// each of channels names execution id.
func (n *notifier) subscribe(id string, channels ...string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	for _, c := range channels {
		k := notice{c, id}
		if n.waiters[k] == nil {
			n.waiters[k] = map[chan struct{}]struct{}{}
		}
		n.waiters[k][ch] = struct{}{}
	}
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		for _, c := range channels {
			k := notice{c, id}
			delete(n.waiters[k], ch)
			if len(n.waiters[k]) == 0 {
				delete(n.waiters, k)
			}
		}
		n.mu.Unlock()
	}
}

func (n *notifier) wake(k notice) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.waiters[k] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (n *notifier) start() {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan struct{})
	go func() {
		defer close(n.done)
		for ctx.Err() == nil {
			if err := n.listen(ctx); err != nil && ctx.Err() == nil {
				n.logger.Warn("listen for finished executions; reconnecting", "error", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	}()
}

// listen holds one connection and dispatches notifications until it fails.
func (n *notifier) listen(ctx context.Context) error {
	conn, err := n.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	for _, c := range notifyChannels {
		if _, err := conn.Exec(ctx, "LISTEN "+c); err != nil {
			return err
		}
	}
	defer conn.Exec(context.Background(), "UNLISTEN *")
	for {
		note, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		n.wake(notice{note.Channel, note.Payload})
	}
}

// stop ends the listener. It is idempotent.
func (n *notifier) stop() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
		n.cancel = nil
	}
}
