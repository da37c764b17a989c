package images

import (
	"bytes"
	"strings"
	"testing"
)

func TestLineWriterFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		output string
		want   string
	}{
		{
			name: "pip",
			output: "Step 1/3 : FROM tako-executor:abc\n ---> 123\nStep 3/3 : RUN python3 -m pip install --no-cache-dir nosuchpkg\n ---> Running in 456\n" +
				"Looking in indexes: http://x/simple\n\x1b[91mERROR: Could not find a version that satisfies the requirement nosuchpkg (from versions: none)\n" +
				"\x1b[0m\x1b[91mERROR: No matching distribution found for nosuchpkg\n\x1b[0mRemoving intermediate container cb9b015d7870\n",
			want: "pip install failed: ERROR: No matching distribution found for nosuchpkg",
		},
		{
			name:   "apt",
			output: "Step 3/3 : RUN apt-get update && apt-get install -y nosuch\nReading package lists...\nE: Unable to locate package nosuch\n",
			want:   "apt-get install failed: E: Unable to locate package nosuch",
		},
		{
			name:   "other step, partial last line",
			output: "Step 2/2 : RUN false\n ---> Running in 1\none\r\ntwo\nthree",
			want:   `step "RUN false" failed: one | two | three`,
		},
		{
			name:   "no output",
			output: "Step 1/1 : FROM nosuch:image\n",
			want:   `step "FROM nosuch:image" failed: engine says no`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			w := newProgress(&buf).lines("    ")
			// Feed byte by byte: lines must survive any split.
			for i := range len(tt.output) {
				_, _ = w.Write([]byte{tt.output[i]})
			}
			if got := w.failure("engine says no"); got != tt.want {
				t.Errorf("failure = %q, want %q", got, tt.want)
			}
			for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
				if !strings.HasPrefix(line, "    ") {
					t.Errorf("line %q lacks the prefix", line)
				}
			}
		})
	}
}
