package trust

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/switchyard-dev/switchyard/internal/natstest"
)

// TestPushToRemoteServer: a nats-server configured with ServerConfig's
// include lets a system user in, and takes the account changes the
// authority pushes: the anonymous rights and the revocations.
func TestPushToRemoteServer(t *testing.T) {
	keys, err := LoadKeys(filepath.Join(t.TempDir(), "trust"))
	if err != nil {
		t.Fatal(err)
	}
	a := NewAuthority(keys, true)
	dir := t.TempDir()
	include, err := a.ServerConfig(filepath.Join(dir, "jwt"))
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("server_name: solo\nlisten: 127.0.0.1:%d\n%s", natstest.FreePort(t), include)
	ns, _ := natstest.RunConfig(t, dir, conf)

	if err := a.Push(); err == nil {
		t.Fatal("Push without a connection to push over")
	}
	c, err := a.MintSystem("pusher")
	if err != nil {
		t.Fatal(err)
	}
	credsPath := filepath.Join(t.TempDir(), "sys.creds")
	if err := os.WriteFile(credsPath, c.Text, 0o600); err != nil {
		t.Fatal(err)
	}
	sys := natstest.ConnectURL(t, ns.ClientURL(), nats.UserCredentials(credsPath))
	servers, err := ClusterServers(sys)
	if err != nil || !servers["solo"] || len(servers) != 1 {
		t.Fatalf("servers %v, %v", servers, err)
	}
	a.AttachRemote(sys)
	if held, err := a.AccountHeld(sys); err != nil || held {
		t.Fatalf("the account held before a push: %v %v", held, err)
	}
	if err := a.Push(); err != nil {
		t.Fatal(err)
	}
	if held, err := a.AccountHeld(sys); err != nil || !held {
		t.Fatalf("the account held after a push: %v %v", held, err)
	}

	held := func() *jwt.AccountClaims {
		t.Helper()
		s, err := ns.AccountResolver().Fetch(a.AccountKey())
		if err != nil {
			t.Fatal(err)
		}
		ac, err := jwt.DecodeAccountClaims(s)
		if err != nil {
			t.Fatal(err)
		}
		return ac
	}
	if err := a.SetPublic([]string{"greet"}); err != nil {
		t.Fatal(err)
	}
	scope, ok := held().SigningKeys.GetScope(pub(keys.Anon))
	if us, _ := scope.(*jwt.UserScope); !ok || us == nil || !slices.Contains(us.Template.Pub.Allow, "fn.greet") {
		t.Fatalf("the server's anonymous scope: %+v", scope)
	}
	user, _ := nkeys.CreateUser()
	upub, _ := user.PublicKey()
	if err := a.SetRevoked(map[string]time.Time{upub: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, ok := held().Revocations[upub]; !ok {
		t.Fatal("the server does not hold the revocation")
	}
	// Pushed again, the same account: taken, nothing changes.
	before := held().ID
	if err := a.Push(); err != nil {
		t.Fatal(err)
	}
	if held().ID != before {
		t.Fatal("Push signed the account anew")
	}
}
