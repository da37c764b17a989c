package bench

import (
	"strings"
	"testing"
)

func TestBenchBaselineArgs(t *testing.T) {
	t.Parallel()
	got := strings.Join(baselineArgs("tako-bench-1", "img:1", "/w", "/w/output-1", Limits{MemoryBytes: 536870912, CPUs: 1.5, Pids: 128}), " ")
	want := "run --rm --name tako-bench-1 --network=none --read-only --cap-drop=ALL --security-opt=no-new-privileges " +
		"--memory=536870912 --memory-swap=536870912 --cpus=1.5 --pids-limit=128 " +
		"--ulimit nofile=256:256 --ulimit fsize=104857600 --tmpfs /tmp:rw,noexec,nosuid,size=64m --user 1000:1000 --init " +
		"--label tako.managed=true --label tako.kind=bench-baseline " +
		"-v /w/code:/code:ro -v /w/input:/input:ro -v /w/output-1:/output:rw img:1 python3 -u /code/main.py"
	if got != want {
		t.Errorf("docker argv\n got %s\nwant %s", got, want)
	}
}
