package images

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/tako-run/tako/internal/testsync"
	"github.com/tako-run/tako/jobtypes"
)

// testRecipe is a small image on base: a script that prints what the test
// run must see.
func testRecipe(base, ref, prints string) Recipe {
	return Recipe{
		Name:       "test image",
		Kind:       "test_recipe",
		Headline:   "building test image " + ref,
		Dockerfile: "FROM " + base + "\nCOPY say /usr/local/bin/say\n",
		Files:      map[string]string{"say": "#!/bin/sh\necho " + prints + "\n"},
		Verify:     container.Config{Entrypoint: []string{"say"}, NetworkDisabled: true},
		VerifyHost: container.HostConfig{NetworkMode: "none"},
	}
}

// TestBuildVerified builds a recipe from outside the package: it gets its
// tag and labels once its test run passes, a second call does nothing, and
// a recipe whose test fails leaves nothing tagged and quotes the output.
func TestBuildVerified(t *testing.T) {
	cli := dockerClient(t)
	testsync.LockImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var progress testsync.Buffer
	b := newTestBuilder(t, cli, jobtypes.PipIndex{}, &progress)
	base, err := b.EnsureExecutor(ctx)
	if err != nil {
		t.Fatal(err)
	}

	ref := uniqueName("tako-test-recipe") + ":0123456789ab"
	removeImageAtEnd(t, cli, ref)
	before := progress.String()
	if err := b.BuildVerified(ctx, ref, testRecipe(base, ref, "tako-ok")); err != nil {
		t.Fatalf("BuildVerified: %v\nprogress:\n%s", err, progress.String())
	}
	out := strings.TrimPrefix(progress.String(), before)
	for _, want := range []string{"==> building test image " + ref + "\n", "==> verifying " + ref + "\n", "==> ok " + ref + " (built in "} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
	id, exists, err := b.ImageID(ctx, ref)
	if err != nil || !exists || id == "" {
		t.Fatalf("ImageID(%s) = %q, %v, %v", ref, id, exists, err)
	}
	info, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if l := info.Config.Labels; l[labelManaged] != "true" || l[labelKind] != "test_recipe" || l[labelBuildHash] != "0123456789ab" {
		t.Errorf("labels = %v", l)
	}
	before = progress.String()
	if err := b.BuildVerified(ctx, ref, testRecipe(base, ref, "tako-ok")); err != nil || progress.String() != before {
		t.Errorf("second BuildVerified = %v, progress:\n%s", err, strings.TrimPrefix(progress.String(), before))
	}

	bad := uniqueName("tako-test-recipe") + ":0123456789ab"
	removeImageAtEnd(t, cli, bad)
	err = b.BuildVerified(ctx, bad, testRecipe(base, bad, "not-ok"))
	want := "build test image: verify " + bad + "-unverified: test run exited with code 0: not-ok"
	if err == nil || err.Error() != want {
		t.Errorf("BuildVerified of a recipe whose test fails = %v, want %q", err, want)
	}
	for _, r := range []string{bad, bad + "-unverified"} {
		if _, exists, err := b.ImageID(ctx, r); err != nil || exists {
			t.Errorf("ImageID(%s) = %v, %v after a failed build; want nothing left", r, exists, err)
		}
	}
}

// TestRecipeUnreachableEngine: what a recipe calls says "unreachable" in
// one sentence, as the builder's own methods do.
func TestRecipeUnreachableEngine(t *testing.T) {
	t.Parallel()
	cli, err := client.NewClientWithOpts(client.WithHost("unix:///nonexistent/docker.sock"), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	b := NewBuilder(cli, Options{}, nil, nil)
	ctx := context.Background()
	if _, _, err := b.ImageID(ctx, "tako-test:none"); !isUnreachableError(err) {
		t.Errorf("ImageID = %v", err)
	}
	if err := b.Pull(ctx, "tako-test:none"); !isUnreachableError(err) {
		t.Errorf("Pull = %v", err)
	}
	if err := b.BuildVerified(ctx, "tako-test:none", testRecipe("scratch", "tako-test:none", "tako-ok")); !isUnreachableError(err) {
		t.Errorf("BuildVerified = %v", err)
	}
}

// isUnreachableError reports whether err is an *UnreachableError itself,
// not wrapped in context of its own.
func isUnreachableError(err error) bool {
	_, ok := err.(*UnreachableError)
	return ok
}
