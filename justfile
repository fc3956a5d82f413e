# Switchyard tasks. `just --list` shows them.

# Run the platform: embedded NATS, gateway, example functions.
up *ARGS:
    go run ./cli/yard up {{ARGS}}

# The README's test command.
test:
    go test ./...

# Everything CI runs (race detector, fuzz smoke, benchmark smoke).
ci:
    bash .ci/run

# Gateway overhead: bare net/http vs gateway -> NATS -> instance.
bench:
    go test ./gateway -run '^$' -bench GatewayOverhead -benchtime 1x
    go test ./schemas -run '^$' -bench . -benchmem

# Fuzz one target for a while: just fuzz schemas FuzzDecode 5m
fuzz PKG="gateway" TARGET="FuzzInvoke" TIME="1m":
    go test ./{{PKG}} -run '^$' -fuzz '^{{TARGET}}$' -fuzztime {{TIME}}

# Format check and vet.
lint:
    test -z "$(gofmt -l .)"
    go vet ./...
