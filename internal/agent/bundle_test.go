package agent

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	secret := []byte("canary-value-123")
	in := []byte("event: token canary-value-123 leaked; b64 Y2FuYXJ5LXZhbHVlLTEyMw== too; short x")
	out := string(redact(in, [][]byte{secret, []byte("x")}))
	if strings.Contains(out, "canary") || strings.Contains(out, "Y2FuYXJ5LXZhbHVlLTEyMw==") {
		t.Errorf("not redacted: %s", out)
	}
	if !strings.Contains(out, "short x") {
		t.Errorf("short values must not be redacted: %s", out)
	}
}
