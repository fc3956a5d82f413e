package callback_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/switchyard-dev/switchyard/internal/callback"
)

func ExamplePolicy_CheckURL() {
	var production callback.Policy
	for _, raw := range []string{
		"https://example.com/hook",
		"http://0x7f.1/", // 127.0.0.1
		"http://169.254.169.254/latest/meta-data/",
		"http://localhost:8080/",
		"ftp://example.com/",
	} {
		u, err := production.CheckURL(raw)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println("accepted", u)
	}
	// Output:
	// accepted https://example.com/hook
	// forbidden callback url: 127.0.0.1 is a loopback address
	// forbidden callback url: 169.254.169.254 is a cloud metadata address
	// forbidden callback url: localhost is a loopback name
	// forbidden callback url: scheme "ftp" is not http or https
}

func ExampleClient_Post() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Println(r.Header.Get("Yard-Invocation-Id"), string(body))
	}))
	defer srv.Close()

	// A test server listens on loopback, which only development allows.
	c := callback.New(callback.Config{Policy: callback.Policy{AllowPrivate: true}})
	err := c.Post(context.Background(), srv.URL+"/hook", []byte(`{"status":"succeeded"}`),
		map[string]string{"Yard-Invocation-Id": "01J9Z3"})
	fmt.Println(err)
	// Output:
	// 01J9Z3 {"status":"succeeded"}
	// <nil>
}
