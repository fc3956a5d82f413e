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

# Benchmarks: gateway overhead (bare net/http vs gateway -> NATS -> instance),
# async throughput vs raw JetStream (and the cost of --sync always), entity
# appends and loads vs raw JetStream.
bench:
    go test ./gateway -run '^$' -bench GatewayOverhead -benchtime 3x
    go test ./runtime/fn -run '^$' -bench AsyncThroughput -benchtime 1x
    go test ./runtime/fn -run '^$' -bench 'Append|Load' -benchmem -count 3
    go test ./runtime/agent -run '^$' -bench ColdStart -benchtime 1x
    go test ./schemas -run '^$' -bench . -benchmem

# The shop end to end: yard up, 1,000 orders, failures, an outage, the books.
shop:
    go test ./functions -run TestShop -count=1 -v

# The async crash test (10,000 invocations, SIGKILLs, NATS restarts).
crash:
    YARD_CRASH_TEST=1 go test ./internal/crashtest -run TestCrash -count=1 -v

# Fuzz one target for a while: just fuzz schemas FuzzDecode 5m
fuzz PKG="gateway" TARGET="FuzzInvoke" TIME="1m":
    go test ./{{PKG}} -run '^$' -fuzz '^{{TARGET}}$' -fuzztime {{TIME}}

# Format check and vet.
lint:
    test -z "$(gofmt -l .)"
    go vet ./...
