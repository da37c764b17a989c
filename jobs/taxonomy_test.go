package jobs

import "testing"

func TestClassifyException(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"SyntaxError":                  ErrSyntax,
		"IndentationError":             ErrSyntax,
		"ModuleNotFoundError":          ErrImport,
		"NameError":                    ErrName,
		"ZeroDivisionError":            "division_error",
		"json.decoder.JSONDecodeError": "json_error",
		"MyOwnError":                   ErrRuntimeError,
	}
	for name, want := range tests {
		if got := ClassifyException(name); got != want {
			t.Errorf("ClassifyException(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestClassifySignal(t *testing.T) {
	t.Parallel()
	if got, ok := ClassifySignal(139); !ok || got != ErrSegfault {
		t.Errorf("ClassifySignal(139) = %q, %v", got, ok)
	}
	if _, ok := ClassifySignal(3); ok {
		t.Errorf("ClassifySignal(3) reported a signal")
	}
}
