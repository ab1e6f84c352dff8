package servers

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// UserHosts is where user servers are reached when each has a host of its own
// (hub.subdomain_host): https://alice.jupyter.example.org/user/alice/. The zero value means
// subdomains are off and every server is a path under the hub's own host.
type UserHosts struct {
	scheme, domain string // "https", "jupyter.example.org[:port]"
}

// NewUserHosts reads hub.subdomain_host ("" for none; validated by the config).
func NewUserHosts(subdomainHost string) UserHosts {
	u, err := url.Parse(subdomainHost)
	if subdomainHost == "" || err != nil {
		return UserHosts{}
	}
	return UserHosts{scheme: u.Scheme, domain: strings.ToLower(u.Host)}
}

// On says whether servers have hosts of their own.
func (h UserHosts) On() bool { return h.domain != "" }

// dnsLabel is a DNS label but for its length (at most 63), which is checked apart: a bounded
// repeat compiles to a copy of its class per character, at every start of the hub.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// Label is the DNS label of a user's host: the name when it is one, else "u-" and a hash (names
// may hold '.', '_' and '@', which a host name cannot).
func Label(user string) string {
	if len(user) <= 63 && dnsLabel.MatchString(user) && !strings.HasPrefix(user, "u-") {
		return user
	}
	sum := sha256.Sum256([]byte(user))
	return "u-" + hex.EncodeToString(sum[:8])
}

// Origin is scheme://host of a user's server, or "" with subdomains off.
func (h UserHosts) Origin(user string) string {
	if !h.On() {
		return ""
	}
	return h.scheme + "://" + Label(user) + "." + h.domain
}

// HubOrigin is scheme://host of the hub itself, or "" with subdomains off.
func (h UserHosts) HubOrigin() string {
	if !h.On() {
		return ""
	}
	return h.scheme + "://" + h.domain
}

// LabelOf returns the user label of a request's Host when it is a user's host, e.g. "alice" for
// alice.jupyter.example.org; false for the hub's host and anything else.
func (h UserHosts) LabelOf(host string) (string, bool) {
	if !h.On() {
		return "", false
	}
	host = strings.ToLower(host)
	domain := h.domain
	// Compare without ports when only one side has one (a proxy may drop the default port).
	if _, _, err := net.SplitHostPort(domain); err == nil && !strings.Contains(host, ":") {
		domain, _, _ = net.SplitHostPort(domain)
	} else if _, _, err := net.SplitHostPort(host); err == nil && !strings.Contains(domain, ":") {
		host, _, _ = net.SplitHostPort(host)
	}
	label, ok := strings.CutSuffix(host, "."+domain)
	if !ok || label == "" || strings.Contains(label, ".") {
		return "", false
	}
	return label, true
}
