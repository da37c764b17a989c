// Package runner is everything in tako that touches Docker: running one
// program in a hardened single-use container through the bootstrap-and-
// trigger protocol, choosing the OCI runtime, bounding concurrency and
// reaping what dead instances left behind. Image builds live in
// runner/images.
package runner
