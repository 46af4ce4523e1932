package gen

import (
	"fmt"
	"io"
	"strings"
)

// Print writes the per-cluster size and override report the way a user reads it in CI logs.
func (o *Output) Print(w io.Writer) {
	for _, c := range o.Clusters {
		fmt.Fprintf(w, "cluster %s (Talos %s)\n", c.Name, c.TalosVersion)
		for _, m := range c.Manifests {
			fmt.Fprintf(w, "  manifest %-14s %4d objects %10s\n", m.Name, m.Objects, human(m.Bytes))
		}
		fmt.Fprintf(w, "  config   controlplane   %10s of %s budget\n", human(c.Configs.ControlPlaneBytes), human(int(c.BudgetBytes)))
		fmt.Fprintf(w, "  config   worker         %10s\n", human(c.Configs.WorkerBytes))
		fmt.Fprintf(w, "  config   post-handover  %10s\n", human(c.Configs.PostHandoverBytes))
		if c.StrippedBytes > 0 {
			fmt.Fprintf(w, "  crdDescriptions: strip saved %s\n", human(c.StrippedBytes))
		}
		if len(c.Hooks) > 0 {
			fmt.Fprintf(w, "  chart hooks, %s:\n", c.HookFate)
			for _, h := range c.Hooks {
				fmt.Fprintf(w, "    %s %s from %s (%s)\n", h.Kind, h.Name, h.Template, strings.Join(h.Events, ", "))
			}
		}
		if len(c.BootOnlyValues) > 0 {
			fmt.Fprintln(w, "  boot-only values (Flux sets them back to the HelmRelease's at hand-over):")
			for _, v := range c.BootOnlyValues {
				fmt.Fprintf(w, "    %s\n", v)
			}
		}
		for _, s := range c.Skipped {
			fmt.Fprintf(w, "  skipped: %s\n", s)
		}
	}
}

func human(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}
