package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevUsage checks tako dev's command-line mistakes: each is a usage
// error that says what was wrong, before Docker is asked anything.
func TestDevUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args       []string
		wantErr    string // in the error
		wantStderr string // in stderr
	}{
		{nil, "usage", "usage: tako dev up"},
		{[]string{"restart"}, "usage", `unknown dev command "restart"`},
		{[]string{"up", "now"}, `unexpected argument "now" (tako dev up takes only --config)`, ""},
		{[]string{"status", "--verbose"}, "flag provided but not defined: -verbose", "-verbose"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			_, stderr, err := runCmd(context.Background(), noDocker(t), append([]string{"dev"}, tt.args...)...)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("dev %v: error %v, want a usage error containing %q", tt.args, err, tt.wantErr)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("dev %v: stderr lacks %q:\n%s", tt.args, tt.wantStderr, stderr)
			}
		})
	}
	for _, args := range [][]string{{"dev", "help"}, {"dev", "up", "-h"}} {
		out, stderr, err := runCmd(context.Background(), noDocker(t), args...)
		if err != nil || !strings.Contains(out+stderr, "usage: tako dev up") {
			t.Errorf("%v: error %v, output %q", args, err, out+stderr)
		}
	}
}

// TestDevConfigErrors checks that a bad configuration stops every dev
// command with an error naming the file or the key, before Docker is
// asked anything.
func TestDevConfigErrors(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	bad := writeConfig(t, "database:\n  auto_start: {prot: 5}\n")
	badPort := writeConfig(t, "database:\n  auto_start: {port: 70000}\n")
	for _, cmd := range []string{"up", "down", "status"} {
		for _, tt := range []struct{ config, want string }{
			{missing, missing + " (from --config) does not exist"},
			{bad, "database.auto_start.prot"},
			{badPort, "database.auto_start.port"},
		} {
			out, _, err := runCmd(context.Background(), noDocker(t), "dev", cmd, "--config", tt.config)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "Docker") {
				t.Errorf("dev %s --config %s: error %v, want one naming %q", cmd, tt.config, err, tt.want)
			}
			if out != "" {
				t.Errorf("dev %s --config %s printed %q", cmd, tt.config, out)
			}
		}
	}
}

// TestDevWithoutDocker checks that every dev command fails when Docker
// does not answer, and that dev status still says what it would look at.
func TestDevWithoutDocker(t *testing.T) {
	t.Parallel()
	config := writeConfig(t, "database:\n  url: postgres://tako:pw@db.example:5432/tako\n  auto_start: {container: tako-pg-dev, port: 55999, volume: tako-pg-dev-data}\n")
	environ := noDocker(t)
	work := lookup(environ, "TAKO_RUNNER_WORK_DIR")
	for _, cmd := range []string{"up", "down", "status"} {
		out, _, err := runCmd(context.Background(), environ, "dev", cmd, "--config", config)
		if err == nil || !strings.Contains(err.Error(), "cannot reach the Docker engine") {
			t.Errorf("dev %s without Docker: error %v", cmd, err)
		}
		if !strings.Contains(out, "note: database.url is set, so this configuration does not use the managed database; tako dev "+cmd+" acts on the tako-pg-dev container all the same\n") {
			t.Errorf("dev %s with database.url set: output lacks the note:\n%s", cmd, out)
		}
		if strings.Contains(out, "pw@") {
			t.Errorf("dev %s printed database.url's password:\n%s", cmd, out)
		}
	}
	out, _, _ := runCmd(context.Background(), environ, "dev", "status", "--config", config)
	for _, want := range []string{
		"container:     tako-pg-dev\n",
		"volume:        tako-pg-dev-data\n",
		"password file: " + filepath.Join(work, "database", "tako-pg-dev.password") + "\n",
		"url:           postgres://postgres:***@127.0.0.1:55999/tako?sslmode=disable\n",
		"state:         unknown: Docker does not answer\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dev status without Docker lacks %q:\n%s", want, out)
		}
	}
}

func TestDevMaskPassword(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"postgres://postgres:s3cr%2Ft@127.0.0.1:55432/tako?sslmode=disable", "postgres://postgres:***@127.0.0.1:55432/tako?sslmode=disable"},
		{"postgres://postgres:@127.0.0.1:55432/tako", "postgres://postgres:***@127.0.0.1:55432/tako"},
		{"postgres://postgres@127.0.0.1:55432/tako", "postgres://postgres@127.0.0.1:55432/tako"},
		{"postgres://127.0.0.1/tako", "postgres://127.0.0.1/tako"},
	}
	for _, tt := range tests {
		if got := maskPassword(tt.in); got != tt.want {
			t.Errorf("maskPassword(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// noDocker is an environment whose Docker engine does not exist and whose
// work directory is the test's own.
func noDocker(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	return []string{"DOCKER_HOST=unix://" + filepath.Join(dir, "no-docker.sock"), "TAKO_RUNNER_WORK_DIR=" + filepath.Join(dir, "work")}
}
