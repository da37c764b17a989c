package images

import (
	"strings"
	"testing"
)

func TestExecutorHash(t *testing.T) {
	t.Parallel()
	opts := Options{BaseImage: "debian:bookworm-slim", DebianSuite: "bookworm"}
	h := executorHash(opts)
	if len(h) != 12 {
		t.Fatalf("hash %q: want 12 hex digits", h)
	}
	if executorHash(opts) != h {
		t.Fatal("hash is not stable")
	}
	// The way it is built, the executor name and the pip index do not
	// change the image's content, so they do not change its tag.
	same := opts
	same.BaseImage, same.DebianMirror, same.Executor, same.WorkDir = "", "http://other.example/debian", "x", "/y"
	same.Pip.IndexURL = "http://pip"
	if executorHash(same) != h {
		t.Error("base image, mirror, name or pip changed the executor hash")
	}
	other := opts
	other.DebianSuite = "trixie"
	if executorHash(other) == h {
		t.Error("suite change kept the executor hash")
	}
}

func TestExecutorRef(t *testing.T) {
	t.Parallel()
	b := NewBuilder(nil, Options{}, nil, nil)
	ref := b.ExecutorRef()
	if !strings.HasPrefix(ref, "tako-executor:") {
		t.Fatalf("ExecutorRef = %q, want the default repository tako-executor", ref)
	}
}

func TestExecutorDockerfile(t *testing.T) {
	t.Parallel()
	fromBase := executorDockerfile("debian:bookworm-slim", true)
	for _, want := range []string{
		"FROM debian:bookworm-slim\n",
		"apt-get install -y --no-install-recommends python3 python3-pip python3-venv ca-certificates",
		"useradd --uid 1000 --gid 1000 --home-dir /home/sandbox",
		"chown 1000:1000 /output",
		"ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LANG=C.UTF-8\n",
		"WORKDIR /app\n",
	} {
		if !strings.Contains(fromBase, want) {
			t.Errorf("Dockerfile lacks %q:\n%s", want, fromBase)
		}
	}
	fromRootfs := executorDockerfile("tako-executor-rootfs:abc", false)
	if strings.Contains(fromRootfs, "apt-get") {
		t.Errorf("rootfs Dockerfile installs packages again:\n%s", fromRootfs)
	}
	if !strings.HasSuffix(fromBase, executorSetup) || !strings.HasSuffix(fromRootfs, executorSetup) {
		t.Error("both paths must end in the shared setup")
	}
}
