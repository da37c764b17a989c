package runner

import (
	"encoding/json"
	"fmt"
	"slices"
	"syscall"

	"github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// DeniedSyscalls are refused to every job container under runc, on top of
// what Docker's default seccomp profile refuses. Each has given containers
// a way into the host kernel (io_uring, userfaultfd and bpf have been the
// vehicle of many exploits, keyctl reaches the kernel keyring that
// containers share) or a view of other processes (perf_event_open,
// ptrace: the bootstrap's supervisor keeps its nonce from the program).
var DeniedSyscalls = []string{
	"add_key", "bpf", "io_uring_enter", "io_uring_register", "io_uring_setup",
	"keyctl", "perf_event_open", "ptrace", "request_key", "userfaultfd",
}

// SeccompProfile is the seccomp profile of job containers under runc, as
// the JSON that --security-opt seccomp= takes: Docker's default without
// DeniedSyscalls. Requirement builds use it too.
var SeccompProfile = mustSeccompProfile()

func mustSeccompProfile() string {
	p, err := seccompProfile()
	if err != nil {
		panic(err) // a static profile that does not encode is a bug
	}
	return p
}

// seccompProfile returns Docker's default seccomp profile with
// DeniedSyscalls taken out of every rule that allows them and refused with
// EPERM by a rule of their own.
func seccompProfile() (string, error) {
	p := seccomp.DefaultProfile()
	kept := p.Syscalls[:0]
	for _, rule := range p.Syscalls {
		if rule.Action != specs.ActAllow {
			kept = append(kept, rule)
			continue
		}
		rule.Names = slices.DeleteFunc(rule.Names, func(name string) bool { return slices.Contains(DeniedSyscalls, name) })
		if rule.Name != "" && slices.Contains(DeniedSyscalls, rule.Name) {
			rule.Name = ""
		}
		if len(rule.Names) > 0 || rule.Name != "" {
			kept = append(kept, rule)
		}
	}
	eperm := uint(syscall.EPERM)
	p.Syscalls = append(kept, &seccomp.Syscall{
		LinuxSyscall: specs.LinuxSyscall{Names: DeniedSyscalls, Action: specs.ActErrno, ErrnoRet: &eperm},
		Comment:      "tako: refused to jobs",
	})
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode seccomp profile: %w", err)
	}
	return string(b), nil
}
