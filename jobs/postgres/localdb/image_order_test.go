package localdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/tako-run/tako/runner/images"
)

// The real builder is what production passes in.
var _ ImageBuilder = (*images.Builder)(nil)

// fakeBuilder stands in for images.Builder to test the order in which
// EnsureImage looks for, pulls and builds an image. Images are refs with
// IDs; a pull or a build makes its ref exist.
type fakeBuilder struct {
	images   map[string]string // ref -> ID
	pullErr  error             // nil: every pull succeeds
	execErr  error             // EnsureExecutor's error
	progress []string
	calls    []string // "pull <ref>", "executor", "build <ref>"
	recipe   images.Recipe
}

const (
	fakeExecutor   = "tako-executor:test"
	fakeExecutorID = "sha256:executor"
)

func (f *fakeBuilder) ImageID(_ context.Context, ref string) (string, bool, error) {
	id, ok := f.images[ref]
	return id, ok, nil
}

func (f *fakeBuilder) ExecutorRef() string { return fakeExecutor }

func (f *fakeBuilder) EnsureExecutor(context.Context) (string, error) {
	f.calls = append(f.calls, "executor")
	if f.execErr != nil {
		return "", f.execErr
	}
	f.images[fakeExecutor] = fakeExecutorID
	return fakeExecutor, nil
}

func (f *fakeBuilder) Pull(_ context.Context, ref string) error {
	f.calls = append(f.calls, "pull "+ref)
	if f.pullErr != nil {
		return f.pullErr
	}
	f.images[ref] = "sha256:pulled"
	return nil
}

func (f *fakeBuilder) BuildVerified(_ context.Context, ref string, r images.Recipe) error {
	f.calls = append(f.calls, "build "+ref)
	f.recipe = r
	f.images[ref] = "sha256:built"
	return nil
}

func (f *fakeBuilder) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func (f *fakeBuilder) Progressf(format string, args ...any) {
	f.progress = append(f.progress, fmt.Sprintf(format, args...))
}

func TestEnsureImageOrder(t *testing.T) {
	t.Parallel()
	const configured = "postgres:16-alpine"
	built := postgresRef(fakeExecutorID)
	unreachable := &images.UnreachableError{Err: errors.New("dial unix /var/run/docker.sock: connect: no such file or directory")}
	for _, tc := range []struct {
		name     string
		image    string
		have     map[string]string
		pullErr  error
		execErr  error
		want     string
		wantErr  string
		calls    []string
		progress string
	}{{
		name:  "the configured image is local",
		image: configured,
		have:  map[string]string{configured: "sha256:local", fakeExecutor: fakeExecutorID, built: "sha256:old"},
		want:  configured,
	}, {
		name:  "tako-postgres was built before: no registry is asked",
		image: configured,
		have:  map[string]string{fakeExecutor: fakeExecutorID, built: "sha256:old"},
		want:  built,
	}, {
		name:  "the configured image is pulled",
		image: configured,
		have:  map[string]string{},
		want:  configured,
		calls: []string{"pull " + configured},
	}, {
		name:     "an image the registry does not have is built instead",
		image:    configured,
		have:     map[string]string{},
		pullErr:  errors.New("manifest unknown"),
		want:     built,
		calls:    []string{"pull " + configured, "executor", "build " + built},
		progress: "==> postgres:16-alpine is not available (manifest unknown); building PostgreSQL from Debian packages instead",
	}, {
		name:  "no configured image: built without a pull",
		have:  map[string]string{},
		want:  built,
		calls: []string{"executor", "build " + built},
	}, {
		name:    "an unreachable engine while pulling is said alone",
		image:   configured,
		have:    map[string]string{},
		pullErr: unreachable,
		wantErr: unreachable.Error(),
		calls:   []string{"pull " + configured},
	}, {
		name:    "an unreachable engine while building the executor is said alone",
		have:    map[string]string{},
		execErr: unreachable,
		wantErr: unreachable.Error(),
		calls:   []string{"executor"},
	}, {
		name:    "a failed executor build says what it was for",
		have:    map[string]string{},
		execErr: errors.New("debootstrap failed"),
		wantErr: "build postgres image: debootstrap failed",
		calls:   []string{"executor"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := &fakeBuilder{images: tc.have, pullErr: tc.pullErr, execErr: tc.execErr}
			ref, err := EnsureImage(context.Background(), b, tc.image)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("EnsureImage = %q, %v; want error %q", ref, err, tc.wantErr)
				}
			} else if err != nil || ref != tc.want {
				t.Fatalf("EnsureImage = %q, %v; want %q", ref, err, tc.want)
			}
			if !slices.Equal(b.calls, tc.calls) {
				t.Errorf("calls %q, want %q", b.calls, tc.calls)
			}
			if got := strings.Join(b.progress, "\n"); got != tc.progress {
				t.Errorf("progress %q, want %q", got, tc.progress)
			}
		})
	}
}

// TestPostgresRecipe: the recipe EnsureImage builds is tako's PostgreSQL
// image on the executor, labelled and verified as before it moved here.
func TestPostgresRecipe(t *testing.T) {
	t.Parallel()
	b := &fakeBuilder{images: map[string]string{}}
	ref, err := EnsureImage(context.Background(), b, "")
	if err != nil {
		t.Fatal(err)
	}
	r := b.recipe
	if r.Name != "postgres image" || r.Kind != "postgres" {
		t.Errorf("name %q kind %q, want \"postgres image\" and \"postgres\"", r.Name, r.Kind)
	}
	if want := "building PostgreSQL image " + ref + " (Debian postgresql-15)"; r.Headline != want {
		t.Errorf("headline %q, want %q", r.Headline, want)
	}
	if !strings.HasPrefix(r.Dockerfile, "FROM "+fakeExecutor+"\n") || r.Files["tako-postgres-entrypoint"] != postgresEntrypoint {
		t.Errorf("recipe not on the executor with the entrypoint:\n%s", r.Dockerfile)
	}
	if !slices.Equal(r.Verify.Entrypoint, []string{"bash", "-c", postgresVerifyScript}) || !r.Verify.NetworkDisabled || r.VerifyHost.NetworkMode != "none" {
		t.Errorf("verification %+v %+v, want the verify script without a network", r.Verify, r.VerifyHost)
	}
	hasPassword := func(kv string) bool {
		p, ok := strings.CutPrefix(kv, "POSTGRES_PASSWORD=")
		return ok && p != ""
	}
	if !slices.ContainsFunc(r.Verify.Env, hasPassword) {
		t.Errorf("verification env %q has no password", r.Verify.Env)
	}
}
