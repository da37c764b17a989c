package runner

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOwnContainerID: the container id comes from the engine's bind
// mounts of /etc/hostname and the like; outside a container there is none.
func TestOwnContainerID(t *testing.T) {
	t.Parallel()
	const id = "bc4dbea0fd250e5107e299eb128f447feed655fa5316ef9cec01c1f3ceb885ec"
	dir := t.TempDir()
	inContainer := filepath.Join(dir, "in")
	os.WriteFile(inContainer, []byte(
		"106 80 0:52 / / rw,relatime - overlay overlay rw\n"+
			"132 106 254:0 /var/lib/docker/containers/"+id+"/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw\n"+
			"133 106 254:0 /containers/"+id+"/hostname /etc/hostname rw,relatime - ext4 /dev/vdb rw\n"), 0o600)
	onHost := filepath.Join(dir, "host")
	os.WriteFile(onHost, []byte("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"+
		"40 22 0:35 / /var/lib/docker/containers rw - ext4 /dev/vda rw\n"), 0o600)
	if got := ownContainerID(inContainer); got != id {
		t.Errorf("in a container: %q, want %q", got, id)
	}
	if got := ownContainerID(onHost); got != "" {
		t.Errorf("on the host: %q, want none", got)
	}
	if got := ownContainerID(filepath.Join(dir, "absent")); got != "" {
		t.Errorf("without mountinfo: %q", got)
	}
}
