// Package jskv opens the key-value buckets Switchyard keeps in JetStream,
// creating each on first use. Several processes (instances, gateways,
// agents) may start at once and race to create the same bucket; the loser
// opens the winner's.
package jskv

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Open returns the bucket cfg.Bucket, creating it with cfg when missing.
// An existing bucket is used as it is: an operator may have tuned it.
func Open(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}
