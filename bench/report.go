package bench

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ReportConfig is the run's configuration as reported.
type ReportConfig struct {
	Config
	Mode     string `json:"mode"`               // "sync" or "async"
	Duration string `json:"duration,omitempty"` // --duration mode only
	Timeout  string `json:"timeout"`
	CodeLen  int    `json:"code_bytes"`
	Limits   Limits `json:"limits"`
}

// newReportConfig is cfg as reported, with the job type jt the server
// described.
func newReportConfig(cfg Config, jt jobType) ReportConfig {
	rc := ReportConfig{Config: cfg, Mode: "sync", Timeout: cfg.Timeout.String(), CodeLen: len(cfg.Code), Limits: jt.Limits}
	switch {
	case cfg.Async:
		rc.Mode = "async"
	case cfg.Stream:
		rc.Mode = "sync, streamed"
	}
	if cfg.Duration > 0 {
		rc.Duration = cfg.Duration.String()
	}
	if rc.Image == "" {
		rc.Image = jt.Image
	}
	return rc
}

// Report is the whole result; --json prints it as is. Tako is the
// --job-type row; Compare, with --compare only, holds the other job types.
// Floors and FloorRatios are there with --floors only, and FloorRatios
// only when tako had a successful job. Burst is there with --burst only,
// Database with --db-cost only.
type Report struct {
	Tako        Stats         `json:"tako"`
	Baseline    *Stats        `json:"baseline"`
	Ratio       *Ratio        `json:"ratio"`
	Config      ReportConfig  `json:"config"`
	Compare     []CompareRow  `json:"compare,omitempty"`
	Floors      *Floors       `json:"floors,omitempty"`
	FloorRatios *FloorRatios  `json:"floor_ratios,omitempty"`
	Burst       *Burst        `json:"burst,omitempty"`
	Database    *DatabaseCost `json:"database,omitempty"`
}

// writeTable prints r as an aligned table, then the ratios and the
// error breakdown. A report with compared job types gets the side-by-side
// table of writeCompareTable instead. The floors, with --floors, and the
// burst, with --burst, and the database work, with --db-cost, come last.
func writeTable(w io.Writer, r Report) {
	if len(r.Compare) > 0 {
		writeCompareTable(w, r)
	} else {
		writeMainTable(w, r)
	}
	if r.Floors != nil {
		writeFloors(w, *r.Floors, r.FloorRatios, r.Tako)
	}
	if r.Burst != nil {
		writeBurst(w, *r.Burst)
	}
	if r.Database != nil {
		writeDatabaseCost(w, *r.Database)
	}
}

// writeMainTable prints the --job-type row, and the baseline's with
// --baseline, then where tako's time went, their ratio and their error
// breakdowns.
func writeMainTable(w io.Writer, r Report) {
	writeHeadline(w, r.Config, "job type "+r.Config.JobType)
	rows := [][]string{{"", "requests", "errors", "duration", "jobs/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "warm", "cold"}}
	row := func(name string, s Stats) []string {
		return []string{name, strconv.Itoa(s.Requests), strconv.Itoa(s.Errors), fmt.Sprintf("%.2fs", s.DurationS),
			fmt.Sprintf("%.1f", s.JobsPerS), latCell(s, s.LatencyMS.P50), latCell(s, s.LatencyMS.P90),
			latCell(s, s.LatencyMS.P99), latCell(s, s.LatencyMS.Max), strconv.Itoa(s.Warm), strconv.Itoa(s.Cold)}
	}
	rows = append(rows, row("tako", r.Tako))
	if w := r.Tako.WarmMS; w != nil {
		rows = append(rows, []string{"  warm only", strconv.Itoa(r.Tako.Warm), "", "", "",
			fmt.Sprintf("%.1f", w.P50), fmt.Sprintf("%.1f", w.P90), fmt.Sprintf("%.1f", w.P99), fmt.Sprintf("%.1f", w.Max), "", ""})
	}
	if r.Baseline != nil {
		rows = append(rows, row("baseline", *r.Baseline))
	}
	writeRows(w, rows)
	if r.Tako.Phases != nil {
		fmt.Fprintln(w)
		writePhases(w, "where the time goes (p50)", r.Tako)
	}
	switch {
	case r.Baseline == nil:
	case r.Ratio == nil:
		fmt.Fprintln(w, "\nno ratio: tako or the baseline had no successful job")
	default:
		fmt.Fprintf(w, "\ntako is %.1fx faster (p50 %.1f ms vs the baseline's %.1f ms) and does %.1fx the baseline's jobs/s\n",
			r.Ratio.P50, r.Tako.LatencyMS.P50, r.Baseline.LatencyMS.P50, r.Ratio.JobsPerS)
	}
	writeErrors(w, "tako", r.Tako)
	if r.Baseline != nil {
		writeErrors(w, "baseline", *r.Baseline)
	}
}

// writeHeadline prints the line above a table: the server, what was
// measured (jobTypes) and the load.
func writeHeadline(w io.Writer, c ReportConfig, jobTypes string) {
	load := fmt.Sprintf("%d requests", c.Requests)
	if c.Duration != "" {
		load = c.Duration
	}
	fmt.Fprintf(w, "tako bench: %s, %s, %s, concurrency %d, %s", c.URL, jobTypes, c.Mode, c.Concurrency, load)
	if c.Warmup > 0 {
		fmt.Fprintf(w, ", warm-up %d", c.Warmup)
	}
	fmt.Fprintln(w)
}

// latCell is latency v of s as a table cell: "-" when s had no successful
// job, and so no latency.
func latCell(s Stats, v float64) string {
	if s.Requests == s.Errors {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

// writeRows prints rows aligned: the first column to the left, the others
// to the right.
func writeRows(w io.Writer, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, rw := range rows {
		for i, cell := range rw {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell)) // fmt pads to runes too
		}
	}
	for _, rw := range rows {
		var b strings.Builder
		for i, cell := range rw {
			if i == 0 {
				fmt.Fprintf(&b, "%-*s", widths[i], cell)
			} else {
				fmt.Fprintf(&b, "  %*s", widths[i], cell)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

// writeErrors prints the error breakdown of s, the row called name: one
// line per kind, with its count and a sample; nothing without errors.
func writeErrors(w io.Writer, name string, s Stats) {
	if s.Errors == 0 {
		return
	}
	kinds := make([]string, 0, len(s.ErrorKinds))
	for k := range s.ErrorKinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "\n%s errors:\n", name)
	for _, k := range kinds {
		fmt.Fprintf(w, "  %-16s %6d  %s\n", k, s.ErrorKinds[k], s.ErrorSamples[k])
	}
}
