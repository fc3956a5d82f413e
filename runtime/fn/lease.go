package fn

import (
	"context"
	"errors"
	"time"
)

// Lease makes a JSON value in a KV bucket ownable by one worker at a time:
// embed it in the value's type and change the value with TakeLease and
// UpdateLeased. The lease is held until its owner ends it or Until
// passes; then anyone may take it over. Token grows with every take, so
// it fences: the owner writes only while the token is still its own, and
// may hand the token to other services as a fencing token, so that they
// refuse a former owner that is still at work. A take's token is at least
// the take's time in microseconds, so tokens keep growing even when the
// value was deleted in between. Until is wall-clock time: hosts whose
// clocks disagree by d see a lease end up to d early or late.
type Lease struct {
	Token int64     `json:"lease_token,omitempty"`
	Until time.Time `json:"lease_until,omitzero"`
}

// Live reports whether the lease is held at t.
func (l *Lease) Live(t time.Time) bool { return t.Before(l.Until) }

// End ends the lease, keeping its token: call it in UpdateLeased's change
// when the work is done or handed back.
func (l *Lease) End() { l.Until = time.Time{} }

func (l *Lease) lease() *Lease { return l }

// leased is a pointer to a type that embeds Lease.
type leased[T any] interface {
	*T
	lease() *Lease
}

// Errors of TakeLease and UpdateLeased. Match them with errors.Is.
var (
	// ErrLeaseHeld: another owner's lease is live.
	ErrLeaseHeld = errors.New("fn: the lease is held by another owner")
	// ErrLeaseLost: the lease was taken over (the token is not the
	// caller's any more), or the value is gone.
	ErrLeaseLost = errors.New("fn: the lease was taken over by another owner")
)

// TakeLease takes the lease on the value at key for ttl, as UpdateJSON
// changes it: change sees the value (the zero value and exists=false when
// the key is missing) and may refuse with an error, which TakeLease
// returns with the value as it found it. While another owner's lease is
// live it returns ErrLeaseHeld without calling change. It returns the value
// written, whose Token is the new owner's.
func TakeLease[T any, P leased[T]](ctx context.Context, kv *KV, key string, ttl time.Duration, change func(v P, exists bool) error) (T, error) {
	return UpdateJSON(ctx, kv, key, func(v *T, exists bool) error {
		l := P(v).lease()
		now := time.Now()
		if exists && l.Live(now) {
			return ErrLeaseHeld
		}
		if err := change(P(v), exists); err != nil {
			return err
		}
		// Greater than the last token, and than any token taken before
		// a delete (which left no value to count from).
		l.Token = max(l.Token+1, now.UnixMicro())
		l.Until = now.Add(ttl)
		return nil
	})
}

// UpdateLeased changes the value at key as the owner of the lease with
// token: while nobody has taken the lease over, even after Until passed,
// else ErrLeaseLost. Errors of change are returned as UpdateJSON returns
// them.
func UpdateLeased[T any, P leased[T]](ctx context.Context, kv *KV, key string, token int64, change func(v P) error) (T, error) {
	return UpdateJSON(ctx, kv, key, func(v *T, exists bool) error {
		if !exists || P(v).lease().Token != token {
			return ErrLeaseLost
		}
		return change(P(v))
	})
}
