// Package register imports the provider implementations linked into the controller.
//
// bootcore test bed: replaces external-secrets v0.20.4's pkg/provider/register/register.go
// through `go build -overlay` (see ../../testbin.sh), which imports every provider. Only the
// 1Password Connect provider is linked, as the lab uses no other; later External Secrets
// releases make the same choice with one module per provider.
package register

import (
	_ "github.com/external-secrets/external-secrets/pkg/provider/onepassword"
)
