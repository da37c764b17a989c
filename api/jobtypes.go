package api

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
)

// JobTypeResponse describes one job type and whether it can run here. GET
// /job-types returns a JSON array of them, as the original does. The
// original's fields for concepts tako does not have keep their honest
// values: SessionEnabled and GPUEnabled are false, GPUVendor is null.
type JobTypeResponse struct {
	Name           string   `json:"name"`
	Image          string   `json:"image"`
	ImageExists    bool     `json:"image_exists"`
	SystemPackages []string `json:"system_packages"`
	Requirements   []string `json:"requirements"`
	Preload        []string `json:"preload"`
	// PythonVersion is the Python of the job type's image, as the image
	// declares it ("3.11"); null when it does not.
	PythonVersion  *string `json:"python_version"`
	SessionEnabled bool    `json:"session_enabled"`
	GPUEnabled     bool    `json:"gpu_enabled"`
	GPUVendor      *string `json:"gpu_vendor"`
	MemoryLimit    string  `json:"memory_limit"` // Docker style: "512m", "1g"
	CPULimit       float64 `json:"cpu_limit"`
	Timeout        int64   `json:"timeout"` // seconds
	Network        string  `json:"network"`
	NetworkEnabled bool    `json:"network_enabled"`
	// NetworkAllow is the egress allowlist when Network is "allow".
	NetworkAllow      []string       `json:"network_allow,omitempty"`
	SecurityMode      string         `json:"security_mode"`
	Runtime           string         `json:"runtime"`
	Available         bool           `json:"available"`
	UnavailableReason string         `json:"unavailable_reason,omitempty"`
	Pool              PoolResponse   `json:"pool"`
	Limits            LimitsResponse `json:"limits"`
}

// PoolResponse is a job type's prewarmed-container policy.
type PoolResponse struct {
	// Warm, Busy and Target are the pool's live state: ready containers,
	// executions of the job type running now and the ready containers it
	// aims for. All are 0 for a job type without a pool.
	Warm   int `json:"warm"`
	Busy   int `json:"busy"`
	Target int `json:"target"`

	Min            int     `json:"min"`
	Max            int     `json:"max"`
	IdleTTLSeconds float64 `json:"idle_ttl_seconds"`
}

// LimitsResponse is a job type's resource limits in base units.
type LimitsResponse struct {
	MemoryBytes    int64   `json:"memory_bytes"`
	CPUs           float64 `json:"cpus"`
	Pids           int64   `json:"pids"`
	TmpBytes       int64   `json:"tmp_bytes"`
	TimeoutSeconds float64 `json:"timeout_seconds"`
}

// handleJobTypes is GET /job-types.
func (s *Server) handleJobTypes(c *fiber.Ctx) error {
	all := s.registry.All()
	out := make([]JobTypeResponse, 0, len(all))
	for _, jt := range all {
		out = append(out, s.jobTypeResponse(jt))
	}
	return c.JSON(out)
}

// handleJobType is GET /job-types/:name.
func (s *Server) handleJobType(c *fiber.Ctx) error {
	name := c.Params("name")
	jt, ok := s.registry.Get(name)
	if !ok {
		return jobs.Errorf(jobs.ENOTFOUND, "Job type '%s' not found", jobs.Truncate(name, maxJobTypeLen))
	}
	return c.JSON(s.jobTypeResponse(jt))
}

// BuildResponse is the body of POST /job-types/:name/build: the original's
// BuildResponse plus Image. Version is "job_type@image_ref"; Digest is
// the tag of tako's image, the hash of what it was built from.
type BuildResponse struct {
	Status   string `json:"status"` // "built"
	JobType  string `json:"job_type"`
	Version  string `json:"version"`
	Digest   string `json:"digest"`
	ImageRef string `json:"image_ref"`
	Image    string `json:"image"`
}

// buildTimeout bounds POST /job-types/:name/build; image builds take minutes.
const buildTimeout = 30 * time.Minute

// handleBuild is POST /job-types/:name/build: make sure the job type's image
// exists, building it when it is missing, as the original's endpoint does.
func (s *Server) handleBuild(c *fiber.Ctx) error {
	name := c.Params("name")
	jt, ok := s.registry.Get(name)
	if !ok {
		return jobs.Errorf(jobs.ENOTFOUND, "Job type '%s' not found", jobs.Truncate(name, maxJobTypeLen))
	}
	ctx, cancel := context.WithTimeout(s.base, buildTimeout)
	defer cancel()
	ref, err := s.runner.Build(ctx, jt)
	if err != nil {
		return err
	}
	digest := ref
	if i := strings.LastIndexAny(ref, ":@"); i >= 0 {
		digest = ref[i+1:]
	}
	return c.JSON(BuildResponse{
		Status: "built", JobType: jt.Name, Version: jt.Name + "@" + ref,
		Digest: digest[:min(len(digest), 12)], ImageRef: ref, Image: ref,
	})
}

func (s *Server) jobTypeResponse(jt jobtypes.JobType) JobTypeResponse {
	av := s.runner.Availability(jt)
	network := string(jt.Network)
	if network == "" {
		network = string(jobtypes.NetworkNone)
	}
	return JobTypeResponse{
		Name:              jt.Name,
		PythonVersion:     optString(av.PythonVersion),
		Image:             av.Image,
		ImageExists:       av.ImageExists,
		SystemPackages:    nonNil(jt.SystemPackages),
		Requirements:      nonNil(jt.Requirements),
		Preload:           nonNil(jt.Preload),
		MemoryLimit:       dockerSize(jt.Limits.Memory),
		CPULimit:          jt.Limits.CPUs,
		Timeout:           int64(jt.Limits.Timeout / time.Second),
		Network:           network,
		NetworkEnabled:    network != string(jobtypes.NetworkNone),
		NetworkAllow:      jt.Allow,
		SecurityMode:      string(jt.SecurityMode),
		Runtime:           av.Runtime,
		Available:         av.Available,
		UnavailableReason: av.Reason,
		Pool: PoolResponse{
			Warm:           av.Pool.Warm,
			Busy:           av.Pool.Busy,
			Target:         av.Pool.Target,
			Min:            jt.Pool.Min,
			Max:            jt.Pool.Max,
			IdleTTLSeconds: jt.Pool.IdleTTL.Seconds(),
		},
		Limits: LimitsResponse{
			MemoryBytes:    jt.Limits.Memory,
			CPUs:           jt.Limits.CPUs,
			Pids:           jt.Limits.Pids,
			TmpBytes:       jt.Limits.Tmp,
			TimeoutSeconds: jt.Limits.Timeout.Seconds(),
		},
	}
}

// dockerSize renders n bytes the way docker's --memory takes them: the
// largest of g, m and k that divides n exactly ("512m", "1g"), else bytes.
func dockerSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
