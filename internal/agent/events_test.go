package agent

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestReporterJSONLines(t *testing.T) {
	var out bytes.Buffer
	r := NewReporter(&out, true)
	code := 1
	r.Emit(Event{Type: EventStart, Phase: "handover", Message: "waiting"})
	r.Emit(Event{Type: EventResult, Message: "failed\nsecond line", ExitCode: &code, Elapsed: 1.5, Bundle: "b.zip"})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one JSON object per line, got %q", out.String())
	}
	var e Event
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil {
		t.Fatal(err)
	}
	if e.Type != EventResult || *e.ExitCode != 1 || e.Bundle != "b.zip" || e.Message != "failed\nsecond line" || e.Time.IsZero() {
		t.Errorf("event = %+v", e)
	}
	if len(r.Events()) != 2 {
		t.Errorf("Events() = %d", len(r.Events()))
	}
}

func TestTextFormat(t *testing.T) {
	code := 0
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{Event{Type: EventStart, Phase: "p", Message: "m"}, "► p: m"},
		{Event{Type: EventProgress, Phase: "p", Message: "m"}, "◎ p: m"},
		{Event{Type: EventReady, Phase: "p", Message: "Node a Ready"}, "✔ p: Node a Ready"},
		{Event{Type: EventDone, Phase: "p", Message: "done", Elapsed: 2.25}, "✔ p: done (2.3s)"},
		{Event{Type: EventFail, Phase: "p", Message: "a\nb"}, "✗ p: a\n    b"},
		{Event{Type: EventWarning, Message: "w"}, "⚠ w"},
		{Event{Type: EventResult, Message: "ok", ExitCode: &code, Elapsed: 75}, "✔ ok (1m15s)"},
	} {
		if got := formatText(tc.e); got != tc.want {
			t.Errorf("formatText(%+v) = %q, want %q", tc.e, got, tc.want)
		}
	}
}
