package bootstrap

import (
	"encoding/json"
	"strings"
	"testing"
)

func decodeTrigger(t *testing.T, line []byte) trigger {
	t.Helper()
	if len(line) == 0 || line[len(line)-1] != '\n' || strings.Count(string(line), "\n") != 1 {
		t.Fatalf("trigger %q is not one line", line)
	}
	var tr trigger
	if err := json.Unmarshal(line, &tr); err != nil {
		t.Fatalf("trigger %q: %v", line, err)
	}
	return tr
}

func TestSourceTriggerLine(t *testing.T) {
	small := "print('héllo\\n')\n# \u2028 \"quoted\"\n"
	tr := decodeTrigger(t, SourceTriggerLine("abc", small))
	if tr.Nonce != "abc" || tr.Source == nil || *tr.Source != small {
		t.Errorf("small source: got %+v", tr)
	}
	empty := decodeTrigger(t, SourceTriggerLine("abc", ""))
	if empty.Source == nil || *empty.Source != "" {
		t.Errorf("an empty program is sent as an empty source, not as 'read the file': %+v", empty)
	}
	for name, source := range map[string]string{
		"too long":            strings.Repeat("x", MaxTriggerLine),
		"too long as JSON":    strings.Repeat("\x01", MaxTriggerLine/4), // \u0001 takes 6 bytes
		"not UTF-8":           "print(1)\n#\xff\n",
		"just under, escaped": strings.Repeat("\"", MaxTriggerLine/2),
	} {
		line := SourceTriggerLine("abc", source)
		if len(line) > MaxTriggerLine {
			t.Errorf("%s: a %d-byte trigger line, over MaxTriggerLine", name, len(line))
		}
		if tr := decodeTrigger(t, line); tr.Nonce != "abc" || tr.Source != nil {
			t.Errorf("%s: the line carries the source; want the nonce alone, so the file is read", name)
		}
	}
	if tr := decodeTrigger(t, TriggerLine("n")); tr.Nonce != "n" || tr.Source != nil {
		t.Errorf("TriggerLine: %+v", tr)
	}
}
