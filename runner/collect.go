package runner

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/tako-run/tako/jobs"
)

// resultFile is the file in /output whose JSON becomes the result's output.
const resultFile = "result.json"

// OutputLimits caps what one execution may return.
type OutputLimits struct {
	MaxArtifactBytes      int64 // per file; larger files are skipped
	MaxArtifacts          int   // files; collection stops there
	MaxStderrBytes        int   // stderr kept; the rest is counted and dropped
	MaxStdoutBytes        int   // stdout kept; the rest is counted and dropped
	MaxTotalArtifactBytes int64 // all files together; collection stops there
	// MaxOutputBytes is the disk a program may take in /output while it
	// runs; past it the program is stopped. 0 means no watch.
	MaxOutputBytes int64
}

// collected is what the program left in /output.
type collected struct {
	artifacts []jobs.Artifact
	contents  [][]byte // contents[i] is the content of artifacts[i]
	output    json.RawMessage
	outputErr string // why result.json could not be used, "" when fine or absent
	truncated bool   // files were left out because of the limits
}

// collectOutput reads result.json and lists the artifacts in dir. Only
// regular files directly in dir count: symlinks, directories, devices,
// FIFOs, hidden files and odd names are skipped. Files are opened with
// O_NOFOLLOW and checked after opening, because the program (or a process it
// left behind) may still be changing the directory while tako reads it.
func collectOutput(dir string, lim OutputLimits) collected {
	var c collected
	if _, err := os.Lstat(filepath.Join(dir, resultFile)); err == nil {
		c.output, c.outputErr = readResult(filepath.Join(dir, resultFile), lim.MaxArtifactBytes)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return c
	}
	var total int64
	for _, e := range entries {
		name := e.Name()
		if name == resultFile || !artifactName(name) || !e.Type().IsRegular() {
			continue
		}
		if len(c.artifacts) >= lim.MaxArtifacts {
			c.truncated = true
			break
		}
		a, content, err := readArtifact(filepath.Join(dir, name), lim.MaxArtifactBytes)
		if errors.Is(err, errTooLarge) {
			c.truncated = true
			continue
		}
		if err != nil {
			continue // not a regular file after all, or gone
		}
		if total+a.SizeBytes > lim.MaxTotalArtifactBytes {
			c.truncated = true
			break
		}
		total += a.SizeBytes
		c.artifacts = append(c.artifacts, a)
		c.contents = append(c.contents, content)
	}
	return c
}

// artifactName reports whether name is acceptable as an artifact name.
func artifactName(name string) bool {
	if name == "" || len(name) > 255 || strings.HasPrefix(name, ".") || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if r == '/' || r == '\\' || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// openRegular opens path for reading only if it is a regular file, without
// following a symlink and without blocking on a FIFO.
func openRegular(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, errors.New("not a regular file")
	}
	return f, fi, nil
}

// readArtifact reads a regular file of at most max bytes and describes it.
func readArtifact(path string, max int64) (jobs.Artifact, []byte, error) {
	f, fi, err := openRegular(path)
	if err != nil {
		return jobs.Artifact{}, nil, err
	}
	defer f.Close()
	if fi.Size() > max {
		return jobs.Artifact{}, nil, errTooLarge
	}
	content, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return jobs.Artifact{}, nil, err
	}
	if int64(len(content)) > max {
		return jobs.Artifact{}, nil, errTooLarge
	}
	sum := sha256.Sum256(content)
	a := jobs.Artifact{Name: filepath.Base(path), SizeBytes: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}
	return a, content, nil
}

// errTooLarge is an artifact over limits.max_artifact_bytes.
var errTooLarge = errors.New("artifact is larger than limits.max_artifact_bytes")

func readResult(path string, max int64) (json.RawMessage, string) {
	f, _, err := openRegular(path)
	if err != nil {
		return nil, "/output/result.json is not a regular file"
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, "cannot read /output/result.json"
	}
	if int64(len(b)) > max {
		return nil, fmt.Sprintf("/output/result.json is larger than %d bytes", max)
	}
	if !json.Valid(b) {
		var syntaxErr *json.SyntaxError
		var v any
		if err := json.Unmarshal(b, &v); errors.As(err, &syntaxErr) {
			return nil, fmt.Sprintf("/output/result.json is not valid JSON: %v", syntaxErr)
		}
		return nil, "/output/result.json is not valid JSON"
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return nil, "/output/result.json is not valid JSON"
	}
	return compact.Bytes(), ""
}
