package agent

import (
	"testing"
)

func TestVersionBefore(t *testing.T) {
	for v, want := range map[string]bool{"v1.13.9": true, "v1.14.1": false, "1.12": true, "v2.0.0": false, "junk": false} {
		if versionBefore(v, 1, 14) != want {
			t.Errorf("versionBefore(%s) != %v", v, want)
		}
	}
}
