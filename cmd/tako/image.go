package main

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/tako-run/tako/runner/images"
)

// serverImageConfig is the tako.yaml inside the server image: a network
// address, which needs API keys (TAKO_AUTH_API_KEYS_<NAME>), and a work
// directory that a worker bind-mounts at the same path on the host.
const serverImageConfig = `# tako.yaml of the tako-server image; set any key with a TAKO_* variable.
server:
  host: 0.0.0.0             # a network address: set API keys (TAKO_AUTH_API_KEYS_<NAME>=...)
runner:
  work_dir: /var/lib/tako   # bind-mount it at this same path from the host
`

// serverImageDockerfile builds the server image from scratch: the static
// binary, CA certificates for TLS to the database and webhooks, the
// default configuration and an empty /tmp.
const serverImageDockerfile = `FROM scratch
COPY tako /tako
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY tako.yaml /etc/tako/tako.yaml
COPY keep /tmp/.keep
ENV HOME=/var/lib/tako TAKO_CONFIG=/etc/tako/tako.yaml
EXPOSE 8000
ENTRYPOINT ["/tako"]
CMD ["server"]
`

// caBundle is where Debian keeps the CA certificates the image carries.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

// runImage is `tako image`: it builds the tako-server image, without a
// registry, from a statically linked tako binary, and tags it
// tako-server:<version>. With --stack it also builds the other images
// deploy/compose.yaml names (buildStack), with the same tag.
func runImage(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	c := newCommand("image", environ, stderr)
	binary := c.flags.fs.String("binary", "", "the statically linked tako binary to put in the image (default: this one); build it with CGO_ENABLED=0, as `make image` does")
	tag := c.flags.fs.String("tag", "tako-server:"+version, "the image's tag")
	stack := c.flags.fs.Bool("stack", false, "also build the images deploy/compose.yaml runs, tagged like --tag: tako-postgres, tako-lb (nginx) and tako-prometheus")
	if err := c.open(args); err != nil {
		return err
	}
	if *binary == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("image: find this binary: %w", err)
		}
		*binary = self
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	defer c.close()

	began := time.Now()
	fmt.Fprintf(stdout, "==> reading %s\n", *binary)
	bin, err := staticBinary(*binary)
	if err != nil {
		return err
	}
	certs, err := os.ReadFile(caBundle)
	if err != nil {
		return fmt.Errorf("image: read the CA certificates (%s; apt-get install ca-certificates): %w", caBundle, err)
	}
	sum := sha256.Sum256(append(append([]byte{}, bin...), certs...))
	ref := "tako-server:" + hex.EncodeToString(sum[:])[:12]
	b := newBuilder(c.docker, c.cfg, c.work, nil, c.logger, stdout)
	err = b.BuildVerified(ctx, ref, images.Recipe{
		Name:       "the server image",
		Kind:       "server",
		Headline:   fmt.Sprintf("building %s from scratch (%d MB binary, CA certificates, default configuration)", *tag, len(bin)>>20),
		Dockerfile: serverImageDockerfile,
		Files: map[string]string{
			"tako": string(bin), "ca-certificates.crt": string(certs), "tako.yaml": serverImageConfig, "keep": "",
		},
		// The binary runs, reads its configuration and finds it valid.
		Verify:       container.Config{Cmd: []string{"validate", "/etc/tako/tako.yaml"}},
		VerifyOutput: "/etc/tako/tako.yaml: ok",
	})
	if err != nil {
		return err
	}
	if err := c.docker.ImageTag(ctx, ref, *tag); err != nil {
		return fmt.Errorf("image: tag %s as %s: %w", ref, *tag, err)
	}
	fmt.Fprintf(stdout, "built %s (%s) in %s\n", *tag, ref, time.Since(began).Round(100*time.Millisecond))
	if !*stack {
		return nil
	}
	return buildStack(ctx, b, c.docker, stackTag(*tag), stdout)
}

// staticBinary reads the executable at path and refuses one that needs a
// dynamic loader, which an image built from scratch does not have.
func staticBinary(path string) ([]byte, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("image: %s is not a Linux executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("image: %s is linked dynamically and cannot run in an image built from scratch: build it with CGO_ENABLED=0 go build ./cmd/tako (make image does), and pass it with --binary", path)
		}
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("image: read %s: %w", path, err)
	}
	return bin, nil
}
