package term

import (
	"bytes"
	"os"
	"testing"
)

func TestColors(t *testing.T) {
	if Colors(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if Colors(f) {
		t.Error("a regular file is not a terminal")
	}
	t.Setenv("NO_COLOR", "")
	if Colors(os.Stdout) {
		t.Error("NO_COLOR (even empty) turns colours off")
	}
	if got := Paint(true).Red("x"); got != "\x1b[31mx\x1b[0m" {
		t.Errorf("Red = %q", got)
	}
	if got := Paint(false).Red("x"); got != "x" {
		t.Errorf("uncoloured Red = %q", got)
	}
}
