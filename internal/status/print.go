package status

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// PrintTable writes the report like `flux get`: NAME, READY, MESSAGE, then a summary line.
func (r *Report) PrintTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tREADY\tMESSAGE")
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%v\t%s\n", c.Name, c.Ready, c.Message)
	}
	tw.Flush()
	if r.Ready {
		fmt.Fprintf(w, "cluster %s (%s): all %d checks Ready\n", r.Cluster, r.Server, len(r.Checks))
		return
	}
	fmt.Fprintf(w, "cluster %s (%s): %d of %d checks not Ready\n", r.Cluster, r.Server, len(r.NotReady()), len(r.Checks))
}

// PrintJSON writes the report as one JSON document on one line (one per evaluation with --watch).
func (r *Report) PrintJSON(w io.Writer) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}
