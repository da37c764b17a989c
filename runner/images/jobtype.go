package images

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/docker/docker/api/types/image"

	"github.com/tako-run/tako/jobtypes"
)

// debianPackage is what a system_packages entry may look like: a Debian
// package name with an optional architecture and version ("python3-numpy",
// "ffmpeg:amd64", "libfoo=1.2-3").
var debianPackage = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$`)

// pythonModule is what a preload entry may look like: a dotted module name.
var pythonModule = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// validateJobType rejects values that cannot safely become part of an image
// tag, a Dockerfile or a command line. Each message names the field.
func validateJobType(jt jobtypes.JobType, pip jobtypes.PipIndex) error {
	if !jobtypes.ValidName(jt.Name) {
		return fmt.Errorf("invalid name: use lowercase letters, digits, '-' and '_' (at most 63)")
	}
	for _, p := range jt.SystemPackages {
		if !debianPackage.MatchString(strings.TrimSpace(p)) {
			return fmt.Errorf("system_packages: %q is not a Debian package name", p)
		}
	}
	for _, r := range jt.Requirements {
		r = strings.TrimSpace(r)
		switch {
		case r == "":
			return fmt.Errorf("requirements: empty requirement")
		case strings.HasPrefix(r, "-"):
			return fmt.Errorf("requirements: %q: options are not allowed, only requirement specifiers", r)
		case strings.ContainsAny(r, "\\\n\r\x00") || strings.IndexFunc(r, isControl) >= 0:
			return fmt.Errorf("requirements: %q contains control characters or a backslash", r)
		}
	}
	for _, v := range append(append([]string{pip.IndexURL}, pip.ExtraIndexURLs...), pip.TrustedHosts...) {
		if strings.IndexFunc(v, isControl) >= 0 {
			return fmt.Errorf("pip: %q contains control characters", v)
		}
	}
	for _, m := range jt.Preload {
		if !pythonModule.MatchString(m) {
			return fmt.Errorf("preload: %q is not a Python module name", m)
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// jobTypeRef is the tag of jt's own image built on the base image baseID:
// "tako-jt-<name>:<build hash>".
func jobTypeRef(jt jobtypes.JobType, baseID string, pip jobtypes.PipIndex) string {
	return "tako-jt-" + jt.Name + ":" + jt.BuildHash(baseID, pip)
}

// jobTypeScript renders the shell script that installs jt's Debian and pip
// packages into its base image. Every value from the configuration is
// shell-quoted.
func jobTypeScript(jt jobtypes.JobType, pip jobtypes.PipIndex) string {
	var b strings.Builder
	b.WriteString("set -e\n")
	if len(jt.SystemPackages) > 0 {
		fmt.Fprintf(&b, "apt-get update\nDEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends %s\nrm -rf /var/lib/apt/lists/*\n",
			quoteAll(jt.SystemPackages))
	}
	if len(jt.Requirements) > 0 {
		args := []string{"python3 -m pip install --no-cache-dir --break-system-packages"}
		if pip.IndexURL != "" {
			args = append(args, "--index-url "+shellQuote(pip.IndexURL))
		}
		for _, u := range pip.ExtraIndexURLs {
			args = append(args, "--extra-index-url "+shellQuote(u))
		}
		for _, h := range pip.TrustedHosts {
			args = append(args, "--trusted-host "+shellQuote(h))
		}
		args = append(args, quoteAll(jt.Requirements))
		// The variables quieten pip where it knows them and are ignored by
		// older versions, unlike the equivalent flags.
		fmt.Fprintf(&b, "PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore %s\n", strings.Join(args, " "))
	}
	return b.String()
}

// buildJobType builds and verifies jt's image ref on top of base: the
// packages step runs the operator's package managers as root with network,
// in a container bounded by the build limits, and is committed.
func (b *Builder) buildJobType(ctx context.Context, jt jobtypes.JobType, base string, baseInfo image.InspectResponse, ref string) error {
	b.progress.printf("==> building job type image %s (FROM %s)", ref, base)
	_, hash, _ := strings.Cut(ref, ":")
	lbls := labels(kindJobType, hash, jt.Name)
	err := b.commitVerified(ctx, ref, step{
		name: "packages", image: base, user: "0", network: "bridge", writable: true, keepEntrypoint: !hasEntrypoint(baseInfo),
		cmd: []string{"/bin/sh", "-c", jobTypeScript(jt, b.opts.Pip)},
	}, restoreConfig(baseInfo), lbls, jt.Preload)
	if err != nil {
		return fmt.Errorf("build job type %q: %w", jt.Name, err)
	}
	return nil
}

// quoteAll shell-quotes each value and joins them with spaces.
func quoteAll(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = shellQuote(strings.TrimSpace(v))
	}
	return strings.Join(q, " ")
}

// shellQuote quotes s for /bin/sh. Plain words stay as they are so that
// Dockerfiles read naturally.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.,:/+=@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
