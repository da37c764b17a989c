package jobs

import "strings"

// Error types of the original's taxonomy that tako reports.
const (
	ErrTimeout        = "timeout"
	ErrOOM            = "oom"
	ErrKilled         = "killed"
	ErrCancelled      = "cancelled"
	ErrSegfault       = "segfault"
	ErrAbort          = "abort"
	ErrStartupTimeout = "startup_timeout"
	ErrRuntimeError   = "runtime_error"
	ErrOutputError    = "output_error"
	ErrInternal       = "internal_error"
	ErrDocker         = "docker_error"
	ErrServiceUnavail = "service_unavailable"
	ErrConfig         = "config_error"
	ErrDependency     = "dependency_error"
	ErrUnknown        = "unknown"
	ErrSyntax         = "syntax_error"
	ErrImport         = "import_error"
	ErrName           = "name_error"
	ErrPermission     = "permission"
	ErrFileNotFound   = "file_not_found"
	ErrRecursion      = "recursion_error"
	ErrMemory         = "memory_error"
	ErrInterrupted    = "interrupted"
	ErrNetwork        = "network_error"
)

// exceptionTypes maps Python exception class names to the taxonomy.
var exceptionTypes = map[string]string{
	"SyntaxError":            ErrSyntax,
	"IndentationError":       ErrSyntax,
	"TabError":               ErrSyntax,
	"ImportError":            ErrImport,
	"ModuleNotFoundError":    ErrImport,
	"NameError":              ErrName,
	"UnboundLocalError":      ErrName,
	"TypeError":              "type_error",
	"ValueError":             "value_error",
	"KeyError":               "key_error",
	"IndexError":             "index_error",
	"AttributeError":         "attribute_error",
	"FileNotFoundError":      ErrFileNotFound,
	"IsADirectoryError":      "file_error",
	"NotADirectoryError":     "file_error",
	"FileExistsError":        "file_error",
	"PermissionError":        ErrPermission,
	"OSError":                "os_error",
	"IOError":                "os_error",
	"BlockingIOError":        "os_error",
	"RecursionError":         ErrRecursion,
	"AssertionError":         "assertion_error",
	"ZeroDivisionError":      "division_error",
	"OverflowError":          "overflow_error",
	"UnicodeError":           "encoding_error",
	"UnicodeDecodeError":     "encoding_error",
	"UnicodeEncodeError":     "encoding_error",
	"JSONDecodeError":        "json_error",
	"ConnectionError":        ErrNetwork,
	"ConnectionRefusedError": ErrNetwork,
	"TimeoutError":           "network_timeout",
	"socket.gaierror":        ErrNetwork,
	"gaierror":               ErrNetwork,
	"MemoryError":            ErrMemory,
	"KeyboardInterrupt":      ErrInterrupted,
}

// ClassifyException maps an uncaught Python exception's class name to an
// error type of the taxonomy; unknown exceptions are runtime_error.
func ClassifyException(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	if t, ok := exceptionTypes[name]; ok {
		return t
	}
	return ErrRuntimeError
}

// ClassifySignal maps the exit code of a process killed by a signal
// (128+signal) to an error type; ok is false for ordinary exit codes.
func ClassifySignal(exitCode int) (string, bool) {
	switch exitCode {
	case 134:
		return ErrAbort, true
	case 135:
		return "bus_error", true
	case 136:
		return "arithmetic_error", true
	case 137:
		return ErrKilled, true
	case 139:
		return ErrSegfault, true
	case 141:
		return "pipe_error", true
	case 143:
		return ErrCancelled, true
	}
	return "", false
}
