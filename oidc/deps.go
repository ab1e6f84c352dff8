package oidc

// Placeholder so the module keeps its OIDC dependencies until the authenticator lands.
import (
	_ "github.com/coreos/go-oidc/v3/oidc"
	_ "golang.org/x/oauth2"
)
