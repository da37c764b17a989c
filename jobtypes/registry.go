package jobtypes

import (
	"fmt"
	"sort"
	"strings"
)

// Registry is the immutable set of job types a server knows. It is safe for
// concurrent use.
type Registry struct {
	byName map[string]JobType
	names  []string
}

// NewRegistry builds a registry from types. Names must be valid and unique.
func NewRegistry(types []JobType) (*Registry, error) {
	r := &Registry{byName: make(map[string]JobType, len(types))}
	for _, jt := range types {
		if !ValidName(jt.Name) {
			return nil, fmt.Errorf("job type name %q: use lowercase letters, digits, '-' and '_' (at most 63)", jt.Name)
		}
		if _, dup := r.byName[jt.Name]; dup {
			return nil, fmt.Errorf("job type %q is declared twice", jt.Name)
		}
		r.byName[jt.Name] = jt
		r.names = append(r.names, jt.Name)
	}
	sort.Strings(r.names)
	return r, nil
}

// Get returns the job type called name.
func (r *Registry) Get(name string) (JobType, bool) {
	jt, ok := r.byName[name]
	return jt, ok
}

// Names returns the sorted names of all job types.
func (r *Registry) Names() []string { return append([]string(nil), r.names...) }

// All returns every job type, sorted by name.
func (r *Registry) All() []JobType {
	out := make([]JobType, 0, len(r.names))
	for _, n := range r.names {
		out = append(out, r.byName[n])
	}
	return out
}

// UnknownError describes a job type name that is not in the registry, listing
// the known ones so the caller can correct the request.
func (r *Registry) UnknownError(name string) string {
	return fmt.Sprintf("unknown job_type %q; known job types: %s", name, strings.Join(r.names, ", "))
}
