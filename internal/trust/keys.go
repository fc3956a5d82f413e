// Package trust is Switchyard's identity on NATS: the decentralized JWT
// setup (an operator, a system account and the account YARD that holds the
// platform and its functions), the credentials of every role, and the
// service that mints short-lived credentials for function instances and
// callers and keeps revocations and the anonymous caller's rights in step
// with the platform. docs/security.md explains the choice.
//
// Only the process that runs the NATS server holds the keys; everyone else
// holds a credential (.creds: a user JWT and its nkey seed) and asks the
// service over NATS, on subjects only the right roles may publish to.
package trust

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nkeys"
)

// Keys are the signing keys of a Switchyard NATS system. Their seeds are
// files of mode 0600 in a directory of mode 0700.
type Keys struct {
	Operator nkeys.KeyPair // signs the accounts
	System   nkeys.KeyPair // the system account ($SYS)
	Account  nkeys.KeyPair // the account YARD
	// Signer is the account's signing key for users with explicit rights.
	Signer nkeys.KeyPair
	// Anon is the account's scoped signing key for anonymous callers:
	// their rights are the scope's template, which follows the registry.
	Anon nkeys.KeyPair
}

var keyFiles = []struct {
	file   string
	prefix nkeys.PrefixByte
	get    func(*Keys) *nkeys.KeyPair
}{
	{"operator.nk", nkeys.PrefixByteOperator, func(k *Keys) *nkeys.KeyPair { return &k.Operator }},
	{"system.nk", nkeys.PrefixByteAccount, func(k *Keys) *nkeys.KeyPair { return &k.System }},
	{"account.nk", nkeys.PrefixByteAccount, func(k *Keys) *nkeys.KeyPair { return &k.Account }},
	{"signer.nk", nkeys.PrefixByteAccount, func(k *Keys) *nkeys.KeyPair { return &k.Signer }},
	{"anon.nk", nkeys.PrefixByteAccount, func(k *Keys) *nkeys.KeyPair { return &k.Anon }},
}

// LoadKeys reads the keys in dir, creating the missing ones (and dir) on
// first use. A key file readable by others is refused: it would let any
// local user mint credentials.
func LoadKeys(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	k := &Keys{}
	for _, f := range keyFiles {
		path := filepath.Join(dir, f.file)
		kp, err := readSeed(path, f.prefix)
		if errors.Is(err, fs.ErrNotExist) {
			kp, err = createSeed(path, f.prefix)
		}
		if err != nil {
			return nil, fmt.Errorf("trust: %s: %w", path, err)
		}
		*f.get(k) = kp
	}
	return k, nil
}

func readSeed(path string, prefix nkeys.PrefixByte) (nkeys.KeyPair, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("mode %v: others may read it; chmod 600 it", st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		return nil, errors.New("not an nkey seed")
	}
	pub, _ := kp.PublicKey()
	if nkeys.Prefix(pub) != prefix {
		return nil, errors.New("a seed of the wrong kind")
	}
	return kp, nil
}

func createSeed(path string, prefix nkeys.PrefixByte) (nkeys.KeyPair, error) {
	kp, err := nkeys.CreatePair(prefix)
	if err != nil {
		return nil, err
	}
	seed, _ := kp.Seed()
	// O_EXCL: two processes starting on one directory never overwrite
	// each other's key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readSeed(path, prefix)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(append(seed, '\n')); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return kp, nil
}

func pub(kp nkeys.KeyPair) string {
	p, _ := kp.PublicKey()
	return p
}

// RouteUser is the user NATS cluster routes authenticate as.
const RouteUser = "yard-route"

// RoutePassword is the password of cluster routes, derived from the
// operator's seed: nodes that share the keys share it, and nobody else can
// join their cluster.
func (k *Keys) RoutePassword() (string, error) {
	seed, err := k.Operator.Seed()
	if err != nil {
		return "", fmt.Errorf("trust: %w", err)
	}
	m := hmac.New(sha256.New, seed)
	m.Write([]byte("switchyard cluster route v1"))
	return hex.EncodeToString(m.Sum(nil)), nil
}
