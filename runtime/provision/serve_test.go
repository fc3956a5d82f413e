package provision

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

const goodSpec = `{"name":"greet","input_schema":{},"output_schema":{},"timeout":"1s"}`

func TestParseRegistration(t *testing.T) {
	if s, err := parseRegistration("yard.register.greet", []byte(goodSpec)); err != nil || s.Name != "greet" {
		t.Fatalf("%+v %v", s, err)
	}
	for _, c := range []struct{ subject, body, want string }{
		{"yard.register.other", goodSpec, "the spec names"},
		{"yard.register.Bad", goodSpec, "invalid"},
		{"yard.register.greet", `{`, "decode"},
		{"yard.register.greet", `{"name":"greet","input_schema":{},"output_schema":{},"timeout":"0s"}`, "timeout"},
		{"yard.register.greet", strings.Repeat(" ", maxSpecBytes+1), "at most"},
	} {
		_, err := parseRegistration(c.subject, []byte(c.body))
		var we *wire.Error
		if !errors.As(err, &we) || !strings.Contains(we.Message, c.want) {
			t.Errorf("%s %.40q: %v, want a wire error saying %q", c.subject, c.body, err, c.want)
		}
	}
}

// FuzzParseRegistration: whatever anyone sends on yard.register.*, the
// answer is a spec that validates and names the subject's function, or a
// wire error; never a panic.
func FuzzParseRegistration(f *testing.F) {
	f.Add("greet", []byte(goodSpec))
	f.Add("greet", []byte(`{"name":"greet","input_schema":{},"output_schema":{},"timeout":"1s","schedules":[{"cron":"@every 1s"}],"env":{"A":"b"}}`))
	f.Add("x", []byte(`null`))
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		spec, err := parseRegistration(wire.RegisterPrefix+name, body)
		if err != nil {
			var we *wire.Error
			if !errors.As(err, &we) {
				t.Fatalf("not a wire error: %v", err)
			}
			return
		}
		if spec.Name != name || spec.Validate() != nil {
			t.Fatalf("accepted %+v for %q", spec, name)
		}
	})
}
