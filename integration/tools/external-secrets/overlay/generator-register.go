// Package register imports the generator implementations linked into the controller.
//
// bootcore test bed: replaces external-secrets v0.20.4's pkg/generator/register/register.go
// through `go build -overlay` (see ../../testbin.sh). No generator is linked: the lab's
// ExternalSecrets use none (an ExternalSecret with a generatorRef fails on the test bed).
package register
