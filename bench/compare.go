package bench

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tako-run/tako/client"
)

// CompareRow is one compared job type's measurement: its name, the same
// statistics as the --job-type row, and its p50 and p99 over that row's.
// A ratio is nil (null) when either row had no successful job.
type CompareRow struct {
	JobType string `json:"job_type"`
	Stats
	P50Ratio *float64 `json:"p50_ratio"`
	P99Ratio *float64 `json:"p99_ratio"`
}

// newCompareRow is job type name's row, with st measured against main.
func newCompareRow(name string, st, main Stats) CompareRow {
	return CompareRow{
		JobType:  name,
		Stats:    st,
		P50Ratio: latencyRatio(st, main, st.LatencyMS.P50, main.LatencyMS.P50),
		P99Ratio: latencyRatio(st, main, st.LatencyMS.P99, main.LatencyMS.P99),
	}
}

// latencyRatio is v (a latency of st) over mainV (the same latency of
// main), or nil when either has no successful job to measure.
func latencyRatio(st, main Stats, v, mainV float64) *float64 {
	if st.Requests == st.Errors || main.Requests == main.Errors || mainV <= 0 {
		return nil
	}
	r := round3(v / mainV)
	return &r
}

// measureCompare measures every job type of cfg.Compare in order, with
// cfg's load, and returns their rows against main. It is nil without
// --compare, and fails only when ctx ends.
func measureCompare(ctx context.Context, cfg Config, tc *client.Client, main Stats, stderr io.Writer) ([]CompareRow, error) {
	var rows []CompareRow
	for _, name := range cfg.Compare {
		st, err := measureJobType(ctx, cfg, tc, name, stderr)
		if err != nil {
			return nil, fmt.Errorf("--compare %s: %w", name, err)
		}
		rows = append(rows, newCompareRow(name, st, main))
	}
	return rows, nil
}

// writeCompareTable prints r as one row per job type, the --job-type row
// first, each with its p50 and p99 over the first row's; then where each
// job type's time went, and each job type's error breakdown.
func writeCompareTable(w io.Writer, r Report) {
	names := append([]string{r.Config.JobType}, r.Config.Compare...)
	writeHeadline(w, r.Config, "job types "+strings.Join(names, ", "))
	main := CompareRow{JobType: r.Config.JobType, Stats: r.Tako}
	if r.Tako.Requests > r.Tako.Errors {
		one := 1.0
		main.P50Ratio, main.P99Ratio = &one, &one
	}
	all := append([]CompareRow{main}, r.Compare...)
	rows := [][]string{{"job type", "requests", "errors", "duration", "jobs/s",
		"p50 ms", "p90 ms", "p99 ms", "max ms", "p50 ×", "p99 ×", "warm", "cold"}}
	for _, c := range all {
		s := c.Stats
		rows = append(rows, []string{c.JobType, strconv.Itoa(s.Requests), strconv.Itoa(s.Errors),
			fmt.Sprintf("%.2fs", s.DurationS), fmt.Sprintf("%.1f", s.JobsPerS),
			latCell(s, s.LatencyMS.P50), latCell(s, s.LatencyMS.P90), latCell(s, s.LatencyMS.P99), latCell(s, s.LatencyMS.Max),
			ratioCell(c.P50Ratio), ratioCell(c.P99Ratio), strconv.Itoa(s.Warm), strconv.Itoa(s.Cold)})
	}
	writeRows(w, rows)
	writeComparePhases(w, all)
	for _, c := range all {
		writeErrors(w, c.JobType, c.Stats)
	}
}

// writeComparePhases prints where the time of each row went, one line per
// job type with a server timing; nothing when none has one.
func writeComparePhases(w io.Writer, rows []CompareRow) {
	first := true
	for _, c := range rows {
		if c.Phases == nil {
			continue
		}
		if first {
			fmt.Fprintln(w)
			first = false
		}
		writePhases(w, "where the time goes in "+c.JobType+" (p50)", c.Stats)
	}
}

// ratioCell is a ratio as a table cell: "-" when there is none.
func ratioCell(r *float64) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *r)
}
