package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// EventType classifies an Event. The text output prints each with a flux-CLI-style symbol.
type EventType string

const (
	EventStart    EventType = "start"    // ► a phase starts
	EventProgress EventType = "progress" // ◎ what a phase is waiting for
	EventReady    EventType = "ready"    // ✔ one object turned Ready
	EventDone     EventType = "done"     // ✔ a phase finished (with elapsed time)
	EventSkip     EventType = "skip"     // ✔ a phase was already done (nothing written)
	EventChange   EventType = "change"   // + an object was (or, with --dry-run, would be) changed
	EventWarning  EventType = "warning"  // ⚠
	EventFail     EventType = "fail"     // ✗ a phase failed
	EventResult   EventType = "result"   // the run's outcome, last event
)

// Event is one line of progress. With -o json each Event is one JSON object per line.
type Event struct {
	Time    time.Time `json:"time"`
	Type    EventType `json:"type"`
	Phase   string    `json:"phase,omitempty"`
	Message string    `json:"message"`
	// Object names the object the event is about, e.g. "Deployment kube-system/coredns".
	Object string `json:"object,omitempty"`
	// Elapsed is set on done, skip, fail and result events, in seconds.
	Elapsed float64 `json:"elapsed,omitempty"`
	// ExitCode is set on the result event.
	ExitCode *int `json:"exitCode,omitempty"`
	// Bundle is the support bundle path, on the result event of a failed run.
	Bundle string `json:"bundle,omitempty"`
}

// Reporter writes events as text or JSON lines and keeps them for the support bundle.
// It is safe for concurrent use.
type Reporter struct {
	w    io.Writer
	json bool

	mu     sync.Mutex
	events []Event
	now    func() time.Time
}

// NewReporter writes to w; asJSON selects one JSON object per line.
func NewReporter(w io.Writer, asJSON bool) *Reporter {
	return &Reporter{w: w, json: asJSON, now: time.Now}
}

// Emit records and prints one event.
func (r *Reporter) Emit(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	r.events = append(r.events, e)
	if r.json {
		data, _ := json.Marshal(e)
		fmt.Fprintf(r.w, "%s\n", data)
		return
	}
	fmt.Fprintln(r.w, formatText(e))
}

// Events returns a copy of every event emitted so far.
func (r *Reporter) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

func formatText(e Event) string {
	elapsed := ""
	if e.Elapsed > 0 {
		elapsed = " (" + formatSeconds(e.Elapsed) + ")"
	}
	prefix := ""
	if e.Phase != "" {
		prefix = e.Phase + ": "
	}
	switch e.Type {
	case EventStart:
		return "► " + prefix + e.Message
	case EventProgress:
		return "◎ " + prefix + indentLines(e.Message)
	case EventReady:
		return "✔ " + prefix + e.Message
	case EventDone, EventSkip:
		return "✔ " + prefix + e.Message + elapsed
	case EventChange:
		return "  " + prefix + e.Message
	case EventWarning:
		return "⚠ " + prefix + e.Message
	case EventFail:
		return "✗ " + prefix + indentLines(e.Message) + elapsed
	case EventResult:
		sym := "✔ "
		if e.ExitCode != nil && *e.ExitCode != 0 {
			sym = "✗ "
		}
		return sym + indentLines(e.Message) + elapsed
	default:
		return prefix + e.Message
	}
}

// indentLines keeps multi-line messages (lists of objects that are not Ready) readable.
func indentLines(s string) string {
	return strings.ReplaceAll(s, "\n", "\n    ")
}

func formatSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}
