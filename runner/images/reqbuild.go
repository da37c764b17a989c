package images

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"

	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/egress"
)

// Egress is the way out that a requirement build's download step takes;
// *egress.Gateway satisfies it.
type Egress interface {
	// Network is the Docker network whose only way out is the proxy.
	Network() string
	// Grant returns proxy credentials for grant, and withdraws them.
	Grant(grant egress.Grant) (proxyURL string, revoke func())
	// Guarded reports whether the network's containers are kept off the
	// host's other ports.
	Guarded() (bool, string)
}

// requirementsPath is where an ad-hoc image keeps its packages; the image's
// PYTHONPATH puts it before the base image's own packages.
const requirementsPath = "/opt/tako/requirements"

// buildRequirements builds the image ref that adds reqs to set's base
// image, base, in steps that never run the caller's packages with
// privileges or network:
//
//  1. download: pip resolves and downloads the distributions, in a
//     container of the base image, as the unprivileged build uid, under the
//     job type's runtime, whose only way out is the egress proxy, which
//     lets it reach the pip index and nothing else. Without source builds
//     only wheels are taken, and no package code runs at all.
//  2. install: pip installs them offline (--no-index, network none), as
//     the build uid, into a directory of its own; with source builds this
//     is where packages' build code runs.
//  3. copy: the installed tree is copied into a container of the base image
//     (by the base image's Python, no package code) and committed.
//
// The result is verified by a hardened run like every image, then tagged.
func (b *Builder) buildRequirements(ctx context.Context, gw Egress, set RequirementSet, base image.InspectResponse, reqs []string, source bool, ref string) error {
	if source {
		if ok, why := gw.Guarded(); !ok {
			return &BuildError{Msg: fmt.Sprintf("requirements: source builds are allowed for job type %q, but this host cannot keep build code off its own ports (%s); only wheels can be installed here", set.JobType.Name, why)}
		}
	}
	if err := os.MkdirAll(b.opts.WorkDir, 0o700); err != nil {
		return fmt.Errorf("requirements build directory: %w", err)
	}
	dir, err := os.MkdirTemp(b.opts.WorkDir, "tako-req-")
	if err != nil {
		return fmt.Errorf("requirements build directory: %w", err)
	}
	defer os.RemoveAll(dir)
	wheels, site := filepath.Join(dir, "wheels"), filepath.Join(dir, "site")
	for _, d := range []string{wheels, site} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fmt.Errorf("requirements build directory: %w", err)
		}
		if err := os.Chown(d, b.opts.BuildUID, b.opts.BuildUID); err != nil {
			return fmt.Errorf("requirements build directory: %w", err)
		}
	}

	proxyURL, revoke := gw.Grant(egress.Grant{Hosts: indexHosts(b.opts.Pip), Private: true})
	defer revoke()
	user := uidUser(b.opts.BuildUID)
	b.progress.printf("    downloading (through the egress proxy, %s)", wheelsOrSource(source))
	out, code, _, err := b.run(ctx, step{
		name: "download", image: set.Base, user: user, runtime: set.Runtime,
		network: gw.Network(),
		env:     append(proxyEnv(proxyURL), "HOME=/tmp", "PIP_DISABLE_PIP_VERSION_CHECK=1"),
		mounts:  []mount.Mount{{Type: mount.TypeBind, Source: wheels, Target: "/wheels"}},
		cmd:     pipDownload(b.opts.Pip, source, reqs),
	}, false)
	if err != nil {
		return err
	}
	if code != 0 {
		return &BuildError{Msg: pipFailure("pip download", out, source)}
	}

	b.progress.printf("    installing offline as uid %d", b.opts.BuildUID)
	out, code, _, err = b.run(ctx, step{
		name: "install", image: set.Base, user: user, runtime: set.Runtime, network: "none",
		env: []string{"HOME=/tmp", "PIP_DISABLE_PIP_VERSION_CHECK=1"},
		mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: wheels, Target: "/wheels", ReadOnly: true},
			{Type: mount.TypeBind, Source: site, Target: "/site"},
		},
		cmd: pipInstall(source, reqs),
	}, false)
	if err != nil {
		return err
	}
	if code != 0 {
		return &BuildError{Msg: pipFailure("pip install", out, source)}
	}

	_, hash, _ := strings.Cut(ref, ":")
	lbls := labels(kindRequirements, hash, "")
	lbls[labelRequirements] = strings.Join(reqs, " ")
	changes := append(restoreConfig(base), "ENV PYTHONPATH="+pythonPath(base))
	return b.commitVerified(ctx, ref, step{
		name: "copy", image: set.Base, user: "0", network: "none", writable: true, keepEntrypoint: !hasEntrypoint(base),
		mounts: []mount.Mount{{Type: mount.TypeBind, Source: site, Target: "/site", ReadOnly: true}},
		cmd:    []string{"python3", "-c", copyScript, "/site", requirementsPath},
	}, changes, lbls, nil)
}

// copyScript copies a tree without following its links and makes it
// readable by every uid. The paths travel as arguments.
const copyScript = `import os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
shutil.copytree(src, dst, symlinks=True)
for root, dirs, files in os.walk(dst):
    os.chmod(root, 0o755)
    for f in files:
        p = os.path.join(root, f)
        if not os.path.islink(p):
            os.chmod(p, 0o644 | (os.stat(p).st_mode & 0o111))`

// pipDownload is the download step's command.
func pipDownload(pip jobtypes.PipIndex, source bool, reqs []string) []string {
	cmd := []string{"python3", "-m", "pip", "download", "--no-cache-dir", "--progress-bar", "off", "--dest", "/wheels"}
	if source {
		// The image's own setuptools builds metadata: nothing more is
		// fetched to build with.
		cmd = append(cmd, "--no-build-isolation")
	} else {
		cmd = append(cmd, "--only-binary", ":all:")
	}
	if pip.IndexURL != "" {
		cmd = append(cmd, "--index-url", pip.IndexURL)
	}
	for _, u := range pip.ExtraIndexURLs {
		cmd = append(cmd, "--extra-index-url", u)
	}
	for _, h := range pip.TrustedHosts {
		cmd = append(cmd, "--trusted-host", h)
	}
	return append(cmd, reqs...)
}

// pipInstall is the install step's command.
func pipInstall(source bool, reqs []string) []string {
	cmd := []string{"python3", "-m", "pip", "install", "--no-cache-dir", "--progress-bar", "off",
		"--no-index", "--find-links", "/wheels", "--target", "/site", "--break-system-packages"}
	if source {
		cmd = append(cmd, "--no-build-isolation")
	} else {
		cmd = append(cmd, "--only-binary", ":all:")
	}
	return append(cmd, reqs...)
}

// pipFailure is a failed pip step's message: pip's own last lines, and
// what source builds being off means when pip found nothing to install.
func pipFailure(what, out string, source bool) string {
	msg := fmt.Sprintf("%s failed: %s", what, lastLines(strings.Split(out, "\n"), 6))
	if !source && (strings.Contains(out, "Could not find a version") || strings.Contains(out, "No matching distribution")) {
		msg += " (only wheels are installed: source builds are off, see requirements.allow_source_builds)"
	}
	return msg
}

func wheelsOrSource(source bool) string {
	if source {
		return "source builds allowed"
	}
	return "wheels only"
}

// proxyEnv points pip, and anything else that reads them, at the proxy.
func proxyEnv(proxyURL string) []string {
	return []string{"HTTP_PROXY=" + proxyURL, "HTTPS_PROXY=" + proxyURL, "http_proxy=" + proxyURL, "https_proxy=" + proxyURL, "NO_PROXY=", "no_proxy="}
}

// pypiFiles is where pypi.org's index points pip for the files themselves.
const pypiFiles = "files.pythonhosted.org"

// indexHosts are the destinations a download may reach: the hosts of the
// configured index URLs (pypi.org and its file host by default) and the
// trusted hosts.
func indexHosts(pip jobtypes.PipIndex) []egress.Host {
	urls := append([]string{pip.IndexURL}, pip.ExtraIndexURLs...)
	if pip.IndexURL == "" {
		urls[0] = "https://pypi.org/simple"
	}
	var hosts []egress.Host
	add := func(name string, port int) {
		hosts = append(hosts, egress.Host{Name: name, Ports: []int{port}})
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" {
			continue
		}
		add(u.Hostname(), urlPort(u))
		if u.Hostname() == "pypi.org" {
			add(pypiFiles, 443)
		}
	}
	for _, h := range pip.TrustedHosts {
		if host, port, err := net.SplitHostPort(h); err == nil {
			if n, err := strconv.Atoi(port); err == nil {
				add(host, n)
			}
			continue
		}
		add(h, 80)
		add(h, 443)
	}
	return hosts
}

// urlPort is u's port, or its scheme's.
func urlPort(u *url.URL) int {
	if n, err := strconv.Atoi(u.Port()); err == nil {
		return n
	}
	if u.Scheme == "http" {
		return 80
	}
	return 443
}

// restoreConfig returns the commit changes that give an image committed
// from a build step's container the base image's user, entrypoint (a step
// on an image without one keeps none: see step.keepEntrypoint) and
// command back; python3 when the base has no command.
func restoreConfig(base image.InspectResponse) []string {
	user, cmd := "0", []string{"python3"}
	var changes []string
	if c := base.Config; c != nil {
		if c.User != "" {
			user = c.User
		}
		if len(c.Cmd) > 0 {
			cmd = c.Cmd
		}
		if len(c.Entrypoint) > 0 {
			changes = append(changes, "ENTRYPOINT "+jsonList(c.Entrypoint))
		}
	}
	return append(changes, "USER "+user, "CMD "+jsonList(cmd))
}

// hasEntrypoint reports whether base has an entrypoint of its own.
func hasEntrypoint(base image.InspectResponse) bool {
	return base.Config != nil && len(base.Config.Entrypoint) > 0
}

func jsonList(v []string) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// pythonPath is the PYTHONPATH of an ad-hoc image on base: the requirements
// first, then whatever base had.
func pythonPath(base image.InspectResponse) string {
	if base.Config != nil {
		for _, kv := range base.Config.Env {
			if v, ok := strings.CutPrefix(kv, "PYTHONPATH="); ok && v != "" {
				return requirementsPath + ":" + v
			}
		}
	}
	return requirementsPath
}
