package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"
)

// DBSettle is how long --db-cost waits after the run before it reads the
// counters for the last time. PostgreSQL 15 flushes a backend's counters
// at the end of a transaction, but not more often than once a second;
// what a backend that then goes idle still holds is flushed by a timer
// after up to 10 s (PGSTAT_IDLE_INTERVAL). A pool connection that ran one
// of the last jobs can hold its counters that long.
const DBSettle = 11 * time.Second

// DatabaseCounters are the cumulative counters of one database in
// pg_stat_database at one moment.
type DatabaseCounters struct {
	Database     string
	XactCommit   int64
	XactRollback int64
	TupInserted  int64
	TupUpdated   int64
	TupDeleted   int64
	TupReturned  int64
	TupFetched   int64
	BlksHit      int64
	BlksRead     int64
	ActiveTimeMS float64 // active_time: time client backends spent executing statements
}

// DatabaseCounterReader reads the counters of tako's database; each call
// must see the counters as they are flushed now, not a snapshot cached by
// an earlier call (NewPGStatReader opens a connection per call).
type DatabaseCounterReader interface {
	ReadCounters(ctx context.Context) (DatabaseCounters, error)
}

// DatabaseWork is what the database did over an interval: differences of
// pg_stat_database's counters, or those over a number of jobs or seconds.
type DatabaseWork struct {
	Transactions float64 `json:"transactions"` // xact_commit + xact_rollback
	Rollbacks    float64 `json:"rollbacks"`    // xact_rollback
	RowsWritten  float64 `json:"rows_written"` // tup_inserted + tup_updated + tup_deleted
	RowsInserted float64 `json:"rows_inserted"`
	RowsUpdated  float64 `json:"rows_updated"`
	RowsDeleted  float64 `json:"rows_deleted"`
	RowsRead     float64 `json:"rows_read"` // tup_returned + tup_fetched
	Blocks       float64 `json:"blocks"`    // blks_hit + blks_read: buffer accesses
	ActiveMS     float64 `json:"active_ms"` // active_time
}

// DatabaseCost is tako's work in its database during the measured run
// (--db-cost), the "database" object of --json. Net is the change of
// pg_stat_database's counters from the run's start to DBSettle after its
// end, less the background the same database shows while tako is idle
// (heartbeats, queue polling, leader election), measured for IdleS just
// before the run and scaled to the run's interval, IntervalS. PerJob is
// Net over the run's requests, failed ones included; it is absent when
// the run sent none.
type DatabaseCost struct {
	Database   string        `json:"database"`
	IdleS      float64       `json:"idle_s"`
	IntervalS  float64       `json:"interval_s"` // the run and the settle wait after it
	SettleS    float64       `json:"settle_s"`
	Requests   int           `json:"requests"`
	Background DatabaseWork  `json:"background_per_s"`
	Total      DatabaseWork  `json:"total"` // over IntervalS, background included
	Net        DatabaseWork  `json:"net"`
	PerJob     *DatabaseWork `json:"per_job"`
	Note       string        `json:"note"`
}

// dbCostNote is what every --db-cost report says about its figures.
const dbCostNote = "net of the idle background measured just before the run and scaled to its interval; " +
	"pg_stat_database counts the whole database (any other client of it too) and PostgreSQL flushes " +
	"a backend's counters late (at most once a second, an idle backend's within 10 s), hence the settle wait; " +
	"active_ms is statement time, lock and I/O waits included, not CPU time"

// work is what the counters say happened from a to b.
func work(a, b DatabaseCounters) DatabaseWork {
	w := DatabaseWork{
		Rollbacks:    float64(b.XactRollback - a.XactRollback),
		RowsInserted: float64(b.TupInserted - a.TupInserted),
		RowsUpdated:  float64(b.TupUpdated - a.TupUpdated),
		RowsDeleted:  float64(b.TupDeleted - a.TupDeleted),
		RowsRead:     float64(b.TupReturned - a.TupReturned + b.TupFetched - a.TupFetched),
		Blocks:       float64(b.BlksHit - a.BlksHit + b.BlksRead - a.BlksRead),
		ActiveMS:     b.ActiveTimeMS - a.ActiveTimeMS,
	}
	w.Transactions = float64(b.XactCommit-a.XactCommit) + w.Rollbacks
	w.RowsWritten = w.RowsInserted + w.RowsUpdated + w.RowsDeleted
	return w
}

// combine is w and v combined field by field with f.
func (w DatabaseWork) combine(v DatabaseWork, f func(a, b float64) float64) DatabaseWork {
	return DatabaseWork{
		Transactions: f(w.Transactions, v.Transactions),
		Rollbacks:    f(w.Rollbacks, v.Rollbacks),
		RowsWritten:  f(w.RowsWritten, v.RowsWritten),
		RowsInserted: f(w.RowsInserted, v.RowsInserted),
		RowsUpdated:  f(w.RowsUpdated, v.RowsUpdated),
		RowsDeleted:  f(w.RowsDeleted, v.RowsDeleted),
		RowsRead:     f(w.RowsRead, v.RowsRead),
		Blocks:       f(w.Blocks, v.Blocks),
		ActiveMS:     f(w.ActiveMS, v.ActiveMS),
	}
}

// scaled is w with every figure multiplied by k and rounded to 3 decimals.
func (w DatabaseWork) scaled(k float64) DatabaseWork {
	return w.combine(DatabaseWork{}, func(a, _ float64) float64 { return round3(a * k) })
}

// minus is w less v, rounded to 3 decimals.
func (w DatabaseWork) minus(v DatabaseWork) DatabaseWork {
	return w.combine(v, func(a, b float64) float64 { return round3(a - b) })
}

// newDatabaseCost computes the report of --db-cost from three reads of
// the counters: idle at the start of the idle interval, start at the
// run's start (its end), and end DBSettle after the run; idleS and
// intervalS are the seconds from idle to start and from start to end.
func newDatabaseCost(idle, start, end DatabaseCounters, idleS, intervalS, settleS float64, requests int) DatabaseCost {
	background := work(idle, start).scaled(1 / idleS)
	total := work(start, end)
	c := DatabaseCost{
		Database:   end.Database,
		IdleS:      round3(idleS),
		IntervalS:  round3(intervalS),
		SettleS:    round3(settleS),
		Requests:   requests,
		Background: background,
		Total:      total.scaled(1),
		Net:        total.minus(work(idle, start).scaled(intervalS / idleS)),
		Note:       dbCostNote,
	}
	if requests > 0 {
		per := c.Net.scaled(1 / float64(requests))
		c.PerJob = &per
	}
	return c
}

// dbMeter measures a run's database work: it reads the counters with
// reader, on clock now, and waits with sleep.
type dbMeter struct {
	reader DatabaseCounterReader
	idle   time.Duration
	settle time.Duration
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
}

// read reads the counters and the time halfway through the read.
func (m dbMeter) read(ctx context.Context) (DatabaseCounters, time.Time, error) {
	t0 := m.now()
	c, err := m.reader.ReadCounters(ctx)
	if err != nil {
		return c, t0, fmt.Errorf("--db-cost: read pg_stat_database: %w", err)
	}
	t1 := m.now()
	return c, t0.Add(t1.Sub(t0) / 2), nil
}

// around reads the counters, waits m.idle without load, reads them again,
// calls run, which returns how many requests it sent, waits m.settle for
// PostgreSQL to flush its counters, and reads them a last time. It fails
// when a read fails, when ctx ends, or with run's error.
func (m dbMeter) around(ctx context.Context, stderr io.Writer, run func() (int, error)) (*DatabaseCost, error) {
	fmt.Fprintf(stderr, "bench: database: %s idle for the background\n", m.idle)
	idle, tIdle, err := m.read(ctx)
	if err != nil {
		return nil, err
	}
	if err := m.sleep(ctx, m.idle); err != nil {
		return nil, fmt.Errorf("--db-cost: %w", err)
	}
	start, tStart, err := m.read(ctx)
	if err != nil {
		return nil, err
	}
	requests, err := run()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "bench: database: waiting %s for PostgreSQL to flush its statistics\n", m.settle)
	if err := m.sleep(ctx, m.settle); err != nil {
		return nil, fmt.Errorf("--db-cost: %w", err)
	}
	end, tEnd, err := m.read(ctx)
	if err != nil {
		return nil, err
	}
	c := newDatabaseCost(idle, start, end, tStart.Sub(tIdle).Seconds(), tEnd.Sub(tStart).Seconds(), m.settle.Seconds(), requests)
	return &c, nil
}

// writeDatabaseCost prints c: per job, the net total and the background.
func writeDatabaseCost(w io.Writer, c DatabaseCost) {
	fmt.Fprintf(w, "\ndatabase work (%s, pg_stat_database; net of the idle background of %.0fs before the run, read %.0fs after it):\n",
		c.Database, c.IdleS, c.SettleS)
	rows := [][]string{{"", "transactions", "rows written", "rows read", "blocks", "active ms"}}
	row := func(name string, d DatabaseWork) []string {
		return []string{name, fmt.Sprintf("%.2f", d.Transactions), fmt.Sprintf("%.2f", d.RowsWritten),
			fmt.Sprintf("%.1f", d.RowsRead), fmt.Sprintf("%.1f", d.Blocks), fmt.Sprintf("%.2f", d.ActiveMS)}
	}
	if c.PerJob != nil {
		rows = append(rows, row("per job", *c.PerJob))
	}
	rows = append(rows, row(fmt.Sprintf("net, %d requests", c.Requests), c.Net),
		row(fmt.Sprintf("total, %.1fs", c.IntervalS), c.Total),
		row("background per s", c.Background))
	writeRows(w, rows)
	share := 0.0
	if c.Total.Transactions > 0 {
		share = 100 * (c.Total.Transactions - c.Net.Transactions) / c.Total.Transactions
	}
	fmt.Fprintf(w, "the idle background is %.0f%% of the interval's transactions; PostgreSQL flushes its counters late, so short runs are noisy\n",
		math.Max(0, share))
}
