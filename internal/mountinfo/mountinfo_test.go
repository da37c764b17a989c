package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:           "/plain",
		`/with\040space`:   "/with space",
		`/tab\011and\134b`: "/tab\tand\\b",
		`/not\09octal`:     `/not\09octal`,
		`/short\04`:        `/short\04`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUnderFindsProc(t *testing.T) {
	points, err := Under("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if len(points) == 0 || points[len(points)-1] != "/proc" {
		t.Errorf("Under(/proc) = %v, want /proc last", points)
	}
}
