package callback

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("a", MaxURLLength)
	tests := []struct {
		url    string
		policy Policy
		want   string // canonical URL when accepted, "" when refused
	}{
		{url: "https://example.com/hook", want: "https://example.com/hook"},
		{url: "http://93.184.216.34:8080/x", want: "http://93.184.216.34:8080/x"},
		{url: "HTTPS://Example.COM./hook?token=s3cret#frag", want: "https://Example.COM./hook?token=s3cret#frag"},
		{url: "https://[2606:2800:220:1:248:1893:25c8:1946]/x", want: "https://[2606:2800:220:1:248:1893:25c8:1946]/x"},
		{url: "https://1.1.1.1:65535/", want: "https://1.1.1.1:65535/"},
		{url: "https://xn--bcher-kva.example/", want: "https://xn--bcher-kva.example/"},
		{url: "https://[64:ff9b::808:808]/", want: "https://[64:ff9b::808:808]/"}, // NAT64 of 8.8.8.8

		{url: "ftp://example.com/x"},
		{url: "file:///etc/passwd"},
		{url: "gopher://example.com/"},
		{url: "example.com/hook"},
		{url: "http:///hook"},
		{url: "http://:8080/hook"},
		{url: "http:example.com"},
		{url: ""},
		{url: "https://user:pass@example.com/"},
		{url: "https://user@example.com/"},
		{url: "https://example.com:0/"},
		{url: "https://example.com:65536/"},
		{url: "https://example.com:/"},
		{url: "https://exa mple.com/"},
		{url: "https://exa_mple!.com/"},
		{url: "https://bücher.example/"},
		{url: "https://１２７.０.０.１/"},
		{url: long},

		{url: "http://127.0.0.1/"},
		{url: "http://127.1/"},
		{url: "http://127.0.1/"},
		{url: "http://0x7f000001/"},
		{url: "http://0x7f.0.0.1/"},
		{url: "http://0177.0.0.1/"},
		{url: "http://2130706433/"},
		{url: "http://127.0.0.1./"},
		{url: "http://[::1]/"},
		{url: "http://[::ffff:127.0.0.1]/"},
		{url: "http://[::ffff:7f00:1]/"},
		{url: "http://[::127.0.0.1]/"},
		{url: "http://[64:ff9b::127.0.0.1]/"},
		{url: "http://[2002:7f00:1::]/"},
		{url: "http://10.1.2.3/"},
		{url: "http://172.16.0.1/"},
		{url: "http://192.168.1.1/"},
		{url: "http://169.254.169.254/latest/meta-data/"},
		{url: "http://0xa9fea9fe/"},
		{url: "http://[::ffff:169.254.169.254]/"},
		{url: "http://[fe80::1]/"},
		{url: "http://[fe80::1%25eth0]/"},
		{url: "http://[fd00:ec2::254]/"},
		{url: "http://100.64.0.1/"},
		{url: "http://100.100.100.200/"},
		{url: "http://0.0.0.0/"},
		{url: "http://0/"},
		{url: "http://[::]/"},
		{url: "http://224.0.0.1/"},
		{url: "http://255.255.255.255/"},
		{url: "http://198.18.0.1/"},
		{url: "http://localhost/"},
		{url: "http://LOCALHOST./"},
		{url: "http://foo.localhost/"},
		{url: "http://256.0.0.1/"},
		{url: "http://1.2.3.4.5/"},
		{url: "http://example.123/"},
		{url: "http://09.1.1.1/"},

		{url: "http://127.0.0.1:8080/x", policy: Policy{AllowPrivate: true}, want: "http://127.0.0.1:8080/x"},
		{url: "http://127.1/", policy: Policy{AllowPrivate: true}, want: "http://127.0.0.1/"},
		{url: "http://0x7f000001:9/", policy: Policy{AllowPrivate: true}, want: "http://127.0.0.1:9/"},
		{url: "http://[::ffff:127.0.0.1]/", policy: Policy{AllowPrivate: true}, want: "http://[::ffff:127.0.0.1]/"},
		{url: "http://localhost:8080/", policy: Policy{AllowPrivate: true}, want: "http://localhost:8080/"},
		{url: "http://10.1.2.3/", policy: Policy{AllowPrivate: true}, want: "http://10.1.2.3/"},
		{url: "http://[fe80::1]/", policy: Policy{AllowPrivate: true}, want: "http://[fe80::1]/"},
		{url: "http://169.254.169.254/", policy: Policy{AllowPrivate: true}},
		{url: "http://[fd00:ec2::254]/", policy: Policy{AllowPrivate: true}},
		{url: "http://100.100.100.200/", policy: Policy{AllowPrivate: true}},
		{url: "http://[64:ff9b::a9fe:a9fe]/", policy: Policy{AllowPrivate: true}},
		{url: "http://169.254.169.254/", policy: Policy{AllowMetadata: true}},
		{url: "http://169.254.169.254/", policy: Policy{AllowPrivate: true, AllowMetadata: true}, want: "http://169.254.169.254/"},
		{url: "http://224.0.0.1/", policy: Policy{AllowPrivate: true, AllowMetadata: true}},
		{url: "ftp://127.0.0.1/", policy: Policy{AllowPrivate: true, AllowMetadata: true}},
	}
	for _, tt := range tests {
		name := tt.url
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			u, err := tt.policy.CheckURL(tt.url)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("CheckURL(%q) = %s, want refusal", tt.url, u)
				}
				if !errors.Is(err, ErrForbiddenURL) {
					t.Errorf("error %v does not wrap ErrForbiddenURL", err)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatalf("CheckURL(%q): %v", tt.url, err)
			}
			if got := u.String(); got != tt.want {
				t.Errorf("CheckURL(%q) = %s, want %s", tt.url, got, tt.want)
			}
		})
	}
}

func TestCheckIP(t *testing.T) {
	tests := []struct {
		ip                   string
		strict, dev, devMeta bool // allowed by Policy{}, {AllowPrivate}, {AllowPrivate, AllowMetadata}
	}{
		{"93.184.216.34", true, true, true},
		{"8.8.8.8", true, true, true},
		{"2606:4700::1111", true, true, true},
		{"::ffff:8.8.8.8", true, true, true},
		{"64:ff9b::808:808", true, true, true},
		{"2002:808:808::1", true, true, true},
		{"127.0.0.1", false, true, true},
		{"127.255.255.254", false, true, true},
		{"::1", false, true, true},
		{"::ffff:127.0.0.1", false, true, true},
		{"10.0.0.1", false, true, true},
		{"172.31.255.255", false, true, true},
		{"172.32.0.1", true, true, true},
		{"192.168.0.1", false, true, true},
		{"169.254.1.1", false, true, true},
		{"100.64.0.1", false, true, true},
		{"100.127.255.255", false, true, true},
		{"100.128.0.1", true, true, true},
		{"0.0.0.0", false, true, true},
		{"::", false, true, true},
		{"fc00::1", false, true, true},
		{"fe80::1", false, true, true},
		{"fe80::1%eth0", false, true, true},
		{"2001:db8::1", false, true, true},
		{"2001::1", false, true, true},
		{"::8.8.8.8", false, true, true},
		{"240.0.0.1", false, true, true},
		{"169.254.169.254", false, false, true},
		{"169.254.170.2", false, false, true},
		{"fd00:ec2::254", false, false, true},
		{"100.100.100.200", false, false, true},
		{"::ffff:169.254.169.254", false, false, true},
		{"64:ff9b::a9fe:a9fe", false, false, true},
		{"2002:a9fe:a9fe::", false, false, true},
		{"224.0.0.1", false, false, false},
		{"255.255.255.255", false, false, false},
		{"ff02::1", false, false, false},
	}
	policies := []Policy{{}, {AllowPrivate: true}, {AllowPrivate: true, AllowMetadata: true}}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.ip)
			for i, want := range []bool{tt.strict, tt.dev, tt.devMeta} {
				err := policies[i].CheckIP(ip)
				if got := err == nil; got != want {
					t.Errorf("%+v.CheckIP(%s) = %v, want allowed=%v", policies[i], ip, err, want)
				}
				if err != nil && !errors.Is(err, ErrForbiddenURL) {
					t.Errorf("error %v does not wrap ErrForbiddenURL", err)
				}
			}
		})
	}
	if err := (Policy{AllowPrivate: true}).CheckIP(netip.Addr{}); err == nil {
		t.Error("CheckIP(zero Addr) = nil, want refusal")
	}
}

func TestParseIPv4(t *testing.T) {
	tests := []struct {
		host string
		want string // "" when invalid
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0X7F.0.0.1", "127.0.0.1"},
		{"0177.0.0.01", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"1.2.3.4.", "1.2.3.4"},
		{"0", "0.0.0.0"},
		{"0x", "0.0.0.0"},
		{"4294967295", "255.255.255.255"},
		{"4294967296", ""},
		{"1.16777216", ""},
		{"1.2.65536", ""},
		{"256.1.1.1", ""},
		{"1.2.3.4.5", ""},
		{"1..2.3", ""},
		{"08.1.1.1", ""},
		{"0xg.1.1.1", ""},
		{"+1.1.1.1", ""},
		{"99999999999999999999999", ""},
	}
	for _, tt := range tests {
		got, ok := parseIPv4(tt.host)
		switch {
		case tt.want == "" && ok:
			t.Errorf("parseIPv4(%q) = %s, want invalid", tt.host, got)
		case tt.want != "" && (!ok || got.String() != tt.want):
			t.Errorf("parseIPv4(%q) = %s, %v, want %s", tt.host, got, ok, tt.want)
		}
	}
}

func TestControl(t *testing.T) {
	strict := Policy{}
	for _, addr := range []string{"127.0.0.1:80", "[::1]:443", "10.0.0.1:8080", "[::ffff:127.0.0.1]:80", "169.254.169.254:80", "[fe80::1%lo]:80", "junk"} {
		if err := strict.control("tcp4", addr, nil); !errors.Is(err, ErrForbiddenURL) {
			t.Errorf("control(%s) = %v, want ErrForbiddenURL", addr, err)
		}
	}
	if err := strict.control("tcp4", "93.184.216.34:443", nil); err != nil {
		t.Errorf("control(public) = %v", err)
	}
	if err := strict.control("udp4", "93.184.216.34:443", nil); err == nil {
		t.Error("control(udp) = nil, want refusal")
	}
	if err := (Policy{AllowPrivate: true}).control("tcp6", "[::1]:80", nil); err != nil {
		t.Errorf("AllowPrivate control([::1]) = %v", err)
	}
}

// FuzzCheckURL checks that CheckURL never panics, that every refusal wraps
// ErrForbiddenURL, and that an accepted IP literal is a public address in
// canonical form, so the dialer connects to exactly what was checked.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://example.com/hook", "http://127.1/", "http://0x7f.1/", "http://[::ffff:127.0.0.1]/",
		"http://2130706433:80/", "http://[fe80::1%25eth0]/", "http://a.localhost/", "http://1.2.3.4./",
		"http://u:p@h/", "http://h:99999/", "http://%31%32%37.0.0.1/", "http://0x/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := Policy{}.CheckURL(raw)
		if err != nil {
			if !errors.Is(err, ErrForbiddenURL) {
				t.Fatalf("CheckURL(%q) error %v does not wrap ErrForbiddenURL", raw, err)
			}
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("CheckURL(%q) accepted scheme %q", raw, u.Scheme)
		}
		host := u.Hostname()
		if ip, err := netip.ParseAddr(host); err == nil {
			if ip.String() != host {
				t.Fatalf("CheckURL(%q) host %q is not canonical", raw, host)
			}
			if err := (Policy{}).CheckIP(ip); err != nil {
				t.Fatalf("CheckURL(%q) accepted %s: %v", raw, ip, err)
			}
		} else if isLocalhostName(host) {
			t.Fatalf("CheckURL(%q) accepted loopback name %q", raw, host)
		}
	})
}
