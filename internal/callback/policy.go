package callback

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// ErrForbiddenURL is wrapped by every refusal of a callback URL, whether
// the URL is malformed or its destination is one the policy forbids, and
// by the dial error when a host name resolves to a forbidden address.
var ErrForbiddenURL = errors.New("forbidden callback url")

// MaxURLLength is the longest callback URL accepted, in bytes.
const MaxURLLength = 2048

// Policy says which destinations are allowed. The zero Policy allows only
// public unicast addresses, which is what production wants.
type Policy struct {
	// AllowPrivate permits loopback, private (RFC 1918, fc00::/7),
	// link-local, CGNAT (100.64.0.0/10), unspecified and other reserved
	// addresses, for local development and tests. Cloud metadata addresses
	// stay refused unless AllowMetadata is also set; multicast and
	// broadcast addresses are always refused.
	AllowPrivate bool
	// AllowMetadata permits the cloud metadata addresses (169.254.169.254,
	// 169.254.170.2, fd00:ec2::254, 100.100.100.200). It has no effect
	// without AllowPrivate, since every one of them is also a private or
	// link-local address.
	AllowMetadata bool
}

// CheckURL validates a callback URL when an invocation is accepted, without
// any network I/O. The scheme must be http or https, the host present, the
// port (if any) in 1-65535, the whole URL at most MaxURLLength bytes, and
// there must be no user information. A host that is an IP literal, in any
// spelling a browser or resolver would accept (127.1, 0x7f.0.0.1,
// 2130706433, [::ffff:127.0.0.1]), is checked against the policy here and
// rewritten to its canonical form in the returned URL, so that the address
// dialled is the address checked. A host name is checked when it is
// dialled, since its DNS answer can change; only localhost and
// *.localhost are refused here, as loopback names. Host names must be
// ASCII (internationalised names in their xn-- form), because net/http
// would map other spellings such as full-width digits onto ASCII ones
// after this check.
//
// Every error wraps ErrForbiddenURL and says in lower case what is wrong.
func (p Policy) CheckURL(raw string) (*url.URL, error) {
	if len(raw) > MaxURLLength {
		return nil, refuse("url is %d bytes, more than %d", len(raw), MaxURLLength)
	}
	if raw == "" {
		return nil, refuse("url is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, which may carry a secret token.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, refuse("malformed url: %v", err)
	}
	switch u.Scheme {
	case "http", "https":
	case "":
		return nil, refuse("url has no scheme")
	default:
		return nil, refuse("scheme %q is not http or https", u.Scheme)
	}
	if u.User != nil {
		return nil, refuse("url must not carry a user name or password")
	}
	host := u.Hostname()
	if u.Opaque != "" || host == "" {
		return nil, refuse("url has no host")
	}
	port := u.Port()
	if port == "" && strings.HasSuffix(u.Host, ":") {
		return nil, refuse("url has an empty port")
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, refuse("port %s is not in 1-65535", port)
		}
	}
	addr, isIP, err := parseHost(host)
	if err != nil {
		return nil, err
	}
	if !isIP {
		if isLocalhostName(host) && !p.AllowPrivate {
			return nil, refuse("%s is a loopback name", host)
		}
		return u, nil
	}
	if err := p.CheckIP(addr); err != nil {
		return nil, err
	}
	u.Host = addr.String()
	if addr.Is6() {
		u.Host = "[" + u.Host + "]"
	}
	if port != "" {
		u.Host += ":" + port
	}
	return u, nil
}

// CheckIP applies the policy to one address. The client's dialer calls it
// for every address it is about to connect to.
func (p Policy) CheckIP(ip netip.Addr) error {
	if !ip.IsValid() {
		return refuse("invalid ip address")
	}
	c := classify(ip)
	switch {
	case c == classPublic:
		return nil
	case c == classMulticast:
		// Never a callback target, whatever the policy.
	case c == classMetadata:
		if p.AllowPrivate && p.AllowMetadata {
			return nil
		}
	case p.AllowPrivate:
		return nil
	}
	return refuse("%s %s", ip, classPhrases[c])
}

// control is the net.Dialer Control function: it runs after name
// resolution and just before connect, on the address actually used, so a
// DNS answer that changes between CheckURL and the dial (rebinding) is
// still caught.
func (p Policy) control(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return refuse("network %s is not tcp", network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return refuse("cannot check dial address %q", address)
	}
	return p.CheckIP(ap.Addr())
}

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrForbiddenURL}, args...)...)
}

type addrClass int

const (
	classPublic addrClass = iota
	classLoopback
	classPrivate
	classLinkLocal
	classShared
	classUnspecified
	classReserved
	classMetadata
	classMulticast
)

var classPhrases = [...]string{
	classPublic:      "is a public address",
	classLoopback:    "is a loopback address",
	classPrivate:     "is a private address",
	classLinkLocal:   "is a link-local address",
	classShared:      "is a carrier-grade nat address",
	classUnspecified: "is an unspecified address",
	classReserved:    "is a reserved address",
	classMetadata:    "is a cloud metadata address",
	classMulticast:   "is a multicast or broadcast address",
}

type addrRange struct {
	prefix netip.Prefix
	class  addrClass
}

// metadataAddrs are the instance metadata services of the large clouds:
// AWS, GCP, Azure and Oracle at 169.254.169.254, the AWS container
// credentials endpoint at 169.254.170.2, AWS over IPv6, and Alibaba.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("169.254.170.2"),
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("100.100.100.200"),
}

// v4Ranges lists every IPv4 block that is not public (RFC 6890 and the
// IANA special-purpose registry). The first match wins.
var v4Ranges = []addrRange{
	{netip.MustParsePrefix("0.0.0.0/8"), classUnspecified},
	{netip.MustParsePrefix("10.0.0.0/8"), classPrivate},
	{netip.MustParsePrefix("100.64.0.0/10"), classShared},
	{netip.MustParsePrefix("127.0.0.0/8"), classLoopback},
	{netip.MustParsePrefix("169.254.0.0/16"), classLinkLocal},
	{netip.MustParsePrefix("172.16.0.0/12"), classPrivate},
	{netip.MustParsePrefix("192.0.0.0/24"), classReserved},
	{netip.MustParsePrefix("192.0.2.0/24"), classReserved},
	{netip.MustParsePrefix("192.88.99.0/24"), classReserved},
	{netip.MustParsePrefix("192.168.0.0/16"), classPrivate},
	{netip.MustParsePrefix("198.18.0.0/15"), classReserved},
	{netip.MustParsePrefix("198.51.100.0/24"), classReserved},
	{netip.MustParsePrefix("203.0.113.0/24"), classReserved},
	{netip.MustParsePrefix("224.0.0.0/4"), classMulticast},
	{netip.MustParsePrefix("255.255.255.255/32"), classMulticast},
	{netip.MustParsePrefix("240.0.0.0/4"), classReserved},
}

// v6Ranges lists the IPv6 blocks with a class of their own. Outside them,
// only global unicast (2000::/3) and the NAT64 prefix are public.
var v6Ranges = []addrRange{
	{netip.MustParsePrefix("::/128"), classUnspecified},
	{netip.MustParsePrefix("::1/128"), classLoopback},
	{netip.MustParsePrefix("fc00::/7"), classPrivate},
	{netip.MustParsePrefix("fec0::/10"), classPrivate}, // site-local, deprecated
	{netip.MustParsePrefix("fe80::/10"), classLinkLocal},
	{netip.MustParsePrefix("ff00::/8"), classMulticast},
	{netip.MustParsePrefix("2001::/23"), classReserved}, // IETF protocol assignments, Teredo
	{netip.MustParsePrefix("2001:db8::/32"), classReserved},
	{netip.MustParsePrefix("3fff::/20"), classReserved},
}

var (
	globalUnicast = netip.MustParsePrefix("2000::/3")
	nat64         = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour     = netip.MustParsePrefix("2002::/16")
	v4Compatible  = netip.MustParsePrefix("::/96")
	thisNetwork   = netip.MustParsePrefix("0.0.0.0/8")
)

func classify(ip netip.Addr) addrClass {
	ip = ip.WithZone("").Unmap()
	if slices.Contains(metadataAddrs, ip) {
		return classMetadata
	}
	if ip.Is4() {
		for _, r := range v4Ranges {
			if r.prefix.Contains(ip) {
				return r.class
			}
		}
		return classPublic
	}
	// An IPv6 address that carries an IPv4 one may be translated to it on
	// the way (NAT64, 6to4), so it is no better than what it carries.
	if v4, ok := embeddedIPv4(ip); ok {
		if c := classify(v4); c != classPublic {
			return c
		}
	}
	for _, r := range v6Ranges {
		if r.prefix.Contains(ip) {
			return r.class
		}
	}
	if globalUnicast.Contains(ip) || nat64.Contains(ip) {
		return classPublic
	}
	return classReserved
}

func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	case v4Compatible.Contains(ip):
		v4 := netip.AddrFrom4([4]byte(b[12:16]))
		// ::, ::1 and their neighbours are IPv6 addresses in their own right.
		return v4, !thisNetwork.Contains(v4)
	}
	return netip.Addr{}, false
}

// parseHost tells an IP literal from a host name. IPv4 literals are parsed
// as the WHATWG URL standard does (what browsers and inet_aton accept), so
// that no spelling of a forbidden address passes as a host name: a host
// whose last label is a number must be a valid IPv4 address.
func parseHost(host string) (addr netip.Addr, isIP bool, err error) {
	if strings.Contains(host, ":") {
		addr, err := netip.ParseAddr(host)
		if err != nil {
			return netip.Addr{}, false, refuse("invalid ipv6 address %q", host)
		}
		if addr.Zone() != "" {
			return netip.Addr{}, false, refuse("ipv6 zone in %q is not allowed", host)
		}
		return addr, true, nil
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return netip.Addr{}, false, refuse("host %q is not ascii; use its xn-- form", host)
		}
	}
	if endsInNumber(host) {
		addr, ok := parseIPv4(host)
		if !ok {
			return netip.Addr{}, false, refuse("invalid ipv4 address %q", host)
		}
		return addr, true, nil
	}
	if err := checkHostName(host); err != nil {
		return netip.Addr{}, false, err
	}
	return netip.Addr{}, false, nil
}

// ipv4Labels splits a host on dots, dropping one trailing empty label.
func ipv4Labels(host string) []string {
	labels := strings.Split(host, ".")
	if len(labels) > 1 && labels[len(labels)-1] == "" {
		labels = labels[:len(labels)-1]
	}
	return labels
}

func endsInNumber(host string) bool {
	labels := ipv4Labels(host)
	last := labels[len(labels)-1]
	if last == "" {
		return false
	}
	if strings.Trim(last, "0123456789") == "" {
		return true
	}
	_, ok := parseIPv4Number(last)
	return ok
}

func parseIPv4(host string) (netip.Addr, bool) {
	labels := ipv4Labels(host)
	if len(labels) > 4 {
		return netip.Addr{}, false
	}
	var n uint64
	for i, l := range labels {
		v, ok := parseIPv4Number(l)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(labels)-1 {
			if v > 255 {
				return netip.Addr{}, false
			}
			n |= v << (8 * (3 - i))
			continue
		}
		// The last number fills every byte the others left.
		if v >= 1<<(8*(4-i)) {
			return netip.Addr{}, false
		}
		n |= v
	}
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// parseIPv4Number reads one part of an IPv4 address: decimal, octal with a
// leading 0, or hexadecimal with 0x.
func parseIPv4Number(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := 10
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		s, base = s[2:], 16
	case len(s) >= 2 && s[0] == '0':
		s, base = s[1:], 8
	}
	if s == "" {
		return 0, true
	}
	if s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	v, err := strconv.ParseUint(s, base, 64)
	return v, err == nil
}

func checkHostName(host string) error {
	name := strings.TrimSuffix(host, ".")
	if len(name) > 253 {
		return refuse("host name is longer than 253 bytes")
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return refuse("host %q has an empty or overlong label", host)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return refuse("host %q contains %q", host, c)
			}
		}
	}
	return nil
}

func isLocalhostName(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}
