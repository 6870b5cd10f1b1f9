package api

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// clientIP is the address the rate limits count a request against. It is
// the peer's address, unless the peer is one of the trusted proxies: then
// it is the right-most address in X-Forwarded-For that is not a trusted
// proxy itself (entries further left were written by the client and can
// be forged). Behind a proxy with none trusted, every customer would share
// the proxy's allowance.
func clientIP(remoteAddr string, forwarded []string, trusted []netip.Prefix) string {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !within(peer, trusted) {
		return host
	}
	var hops []string
	for _, h := range forwarded {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a garbled hop: trust nothing to its left
		}
		a = a.Unmap()
		if !within(a, trusted) {
			return a.String()
		}
	}
	return host
}

func within(a netip.Addr, prefixes []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseProxies reads a comma-separated list of addresses and CIDR prefixes
// (10.0.0.0/8, 192.0.2.7) into the prefixes Config.TrustedProxies takes.
func ParseProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("api: trusted proxy %q is neither an address nor a CIDR prefix", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
