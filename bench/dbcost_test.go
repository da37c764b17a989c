package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tako-run/tako/jobs/postgres/pgtest"
)

// counters is a pg_stat_database row of database tako with every counter
// at n times the unit and active_time at n × 10 ms.
func counters(n int64) DatabaseCounters {
	return DatabaseCounters{Database: "tako", XactCommit: 3 * n, XactRollback: n, TupInserted: 2 * n, TupUpdated: 5 * n,
		TupDeleted: n, TupReturned: 100 * n, TupFetched: 10 * n, BlksHit: 40 * n, BlksRead: 2 * n, ActiveTimeMS: 10 * float64(n)}
}

func TestNewDatabaseCost(t *testing.T) {
	t.Parallel()
	// Idle for 10 s: 1 unit of everything. The run's interval, 20 s,
	// then shows 12 units: 2 of them background, 10 tako's, over 5 jobs.
	c := newDatabaseCost(counters(100), counters(101), counters(113), 10, 20, 11, 5)
	unit := DatabaseWork{Transactions: 4, Rollbacks: 1, RowsWritten: 8, RowsInserted: 2, RowsUpdated: 5, RowsDeleted: 1,
		RowsRead: 110, Blocks: 42, ActiveMS: 10}
	if want := unit.scaled(0.1); c.Background != want {
		t.Errorf("background per s %+v, want %+v", c.Background, want)
	}
	if want := unit.scaled(12); c.Total != want {
		t.Errorf("total %+v, want %+v", c.Total, want)
	}
	if want := unit.scaled(10); c.Net != want {
		t.Errorf("net %+v, want %+v", c.Net, want)
	}
	if want := unit.scaled(2); c.PerJob == nil || *c.PerJob != want {
		t.Errorf("per job %+v, want %+v", c.PerJob, want)
	}
	if c.Database != "tako" || c.IdleS != 10 || c.IntervalS != 20 || c.SettleS != 11 || c.Requests != 5 || c.Note == "" {
		t.Errorf("cost %+v", c)
	}

	t.Run("no requests", func(t *testing.T) {
		t.Parallel()
		if c := newDatabaseCost(counters(0), counters(1), counters(2), 10, 10, 11, 0); c.PerJob != nil {
			t.Errorf("per job %+v without requests", *c.PerJob)
		}
	})
	t.Run("a run below the background", func(t *testing.T) {
		t.Parallel()
		// Noise can make the net negative: it is reported as measured.
		c := newDatabaseCost(counters(0), counters(10), counters(15), 10, 10, 11, 1)
		if c.Net.Transactions != -20 || c.PerJob.ActiveMS != -50 {
			t.Errorf("net %+v, per job %+v; want -20 transactions, -50 active ms per job", c.Net, *c.PerJob)
		}
	})
}

// fakeCounters returns its reads in order, and fails after the last.
type fakeCounters struct {
	reads []DatabaseCounters
}

func (f *fakeCounters) ReadCounters(context.Context) (DatabaseCounters, error) {
	if len(f.reads) == 0 {
		return DatabaseCounters{}, errors.New("no more reads")
	}
	c := f.reads[0]
	f.reads = f.reads[1:]
	return c, nil
}

// dbClock is a fake clock that only sleeps move, and each reading of which
// takes step.
type dbClock struct {
	t    time.Time
	step time.Duration
}

func (c *dbClock) now() time.Time {
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *dbClock) sleep(_ context.Context, d time.Duration) error {
	c.t = c.t.Add(d)
	return nil
}

func TestDBMeterAround(t *testing.T) {
	t.Parallel()
	clock := &dbClock{t: time.Unix(0, 0), step: 50 * time.Millisecond}
	reader := &fakeCounters{reads: []DatabaseCounters{counters(0), counters(10), counters(40)}}
	m := dbMeter{reader: reader, idle: 10 * time.Second, settle: 11 * time.Second, now: clock.now, sleep: clock.sleep}
	var stderr bytes.Buffer
	c, err := m.around(t.Context(), &stderr, func() (int, error) {
		clock.t = clock.t.Add(9 * time.Second) // the run
		return 4, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Each read's time is its middle: the idle interval is 10 s and a read
	// long, the run's interval 9 + 11 s and a read.
	if c.IdleS != 10.1 || c.IntervalS != 20.1 || c.SettleS != 11 || c.Requests != 4 {
		t.Errorf("idle %vs, interval %vs, settle %vs, %d requests; want 10.1, 20.1, 11, 4", c.IdleS, c.IntervalS, c.SettleS, c.Requests)
	}
	// 10 units in 10.1 s idle, 30 in the 20.1 s interval: 30 - 10 × 20.1/10.1 net.
	if want := round3(4 * (30 - 10*20.1/10.1)); c.Net.Transactions != want {
		t.Errorf("net transactions %v, want %v", c.Net.Transactions, want)
	}
	for _, want := range []string{"10s idle for the background", "waiting 11s for PostgreSQL"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("no %q in progress:\n%s", want, stderr.String())
		}
	}

	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		runErr := errors.New("interrupted")
		for _, tt := range []struct {
			name  string
			reads int
			run   error
			want  string
		}{
			{"first read", 0, nil, "--db-cost: read pg_stat_database: no more reads"},
			{"read before the run", 1, nil, "--db-cost: read pg_stat_database: no more reads"},
			{"run", 3, runErr, "interrupted"},
			{"last read", 2, nil, "--db-cost: read pg_stat_database: no more reads"},
		} {
			reader := &fakeCounters{reads: make([]DatabaseCounters, tt.reads)}
			clock := &dbClock{t: time.Unix(0, 0)}
			m := dbMeter{reader: reader, idle: time.Second, settle: time.Second, now: clock.now, sleep: clock.sleep}
			_, err := m.around(t.Context(), &bytes.Buffer{}, func() (int, error) { return 1, tt.run })
			if err == nil || err.Error() != tt.want {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
			}
		}
	})
}

func TestDatabaseCostOutput(t *testing.T) {
	t.Parallel()
	r := fixedReport()
	c := newDatabaseCost(counters(100), counters(101), counters(113), 10, 20, 11, 5)
	r.Database = &c

	var out bytes.Buffer
	writeTable(&out, r)
	for _, want := range []string{
		"\ndatabase work (tako, pg_stat_database; net of the idle background of 10s before the run, read 11s after it):\n",
		"                  transactions  rows written  rows read  blocks  active ms\n",
		"per job                   8.00         16.00      220.0    84.0      20.00\n",
		"net, 5 requests          40.00         80.00     1100.0   420.0     100.00\n",
		"total, 20.0s             48.00         96.00     1320.0   504.0     120.00\n",
		"background per s          0.40          0.80       11.0     4.2       1.00\n",
		"the idle background is 17% of the interval's transactions; PostgreSQL flushes its counters late, so short runs are noisy\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}

	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Database map[string]json.RawMessage `json:"database"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"database", "idle_s", "interval_s", "settle_s", "requests", "background_per_s", "total", "net", "per_job", "note"} {
		if _, ok := raw.Database[key]; !ok {
			t.Errorf("database object has no %q: %s", key, b)
		}
	}
	var per DatabaseWork
	if err := json.Unmarshal(raw.Database["per_job"], &per); err != nil || per.Transactions != 8 || per.RowsWritten != 16 || per.ActiveMS != 20 {
		t.Errorf("per_job %s (%v), want 8 transactions, 16 rows written, 20 active ms", raw.Database["per_job"], err)
	}

	r.Database = nil
	if b, _ := json.Marshal(r); strings.Contains(string(b), `"database"`) {
		t.Errorf("a report without --db-cost has a database object: %s", b)
	}
}

// TestPGStatReader reads pg_stat_database of a fresh database on the test
// server before and after a session that inserts rows, and waits for the
// counters to show them: a session's counters are flushed when it ends.
func TestPGStatReader(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	r := NewPGStatReader(url)
	ctx := t.Context()
	before, err := r.ReadCounters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(before.Database, "tako_test_") {
		t.Errorf("database %q, want the test's", before.Database)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 7)"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		after, err := r.ReadCounters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if w := work(before, after); w.RowsInserted >= 7 && w.Transactions >= 1 && w.ActiveMS > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15 s pg_stat_database shows %+v since the first read, want 7 rows inserted", work(before, after))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
