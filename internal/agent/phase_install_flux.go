package agent

import "context"

// fluxFacts are what install-flux installed: chart versions (chart.<release>) and Flux's own
// version (flux), for the hand-over marker.
type fluxFacts struct {
	versions map[string]string
}

// fluxInstall is one way of installing Flux: with Helm (fluxhelm.go) or from manifests
// (fluxmanifests.go). Its inputs were read with the repository (loadInputs).
type fluxInstall interface {
	title() string
	done(ctx context.Context, e env) (Outcome[fluxFacts], error)
	install(ctx context.Context, e env, dryRun bool) (fluxFacts, error)
}

// installFluxPhase installs Flux: with Helm, the flux-operator and flux-instance charts as
// the HelmReleases that will own them; or, air-gapped, from a local manifests directory plus
// the Flux entry's sync.
type installFluxPhase struct{ env }

func (p *installFluxPhase) Name() string  { return PhaseInstallFlux }
func (p *installFluxPhase) Title() string { return p.flux.title() }

func (p *installFluxPhase) Done(ctx context.Context) (Outcome[fluxFacts], error) {
	return p.flux.done(ctx, p.env)
}

func (p *installFluxPhase) Run(ctx context.Context) (fluxFacts, error) {
	return p.flux.install(ctx, p.env, false)
}

func (p *installFluxPhase) DryRun(ctx context.Context) (fluxFacts, error) {
	return p.flux.install(ctx, p.env, true)
}

func (in *inputs) fluxInstaller() (fluxInstall, error) {
	if in.opts.FluxInstall == InstallManifests {
		return loadFluxManifests(in)
	}
	return loadFluxHelm(in)
}

func dryVerb(dry bool, verb string) string {
	if dry {
		return "would be " + verb
	}
	return verb
}
