package wire

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxNameLen is the longest function name: one letter plus 62 more characters.
const MaxNameLen = 63

// ErrInvalidName is wrapped by every error that rejects a function name.
var ErrInvalidName = errors.New("invalid function name")

// ValidateName checks a function name against ^[a-z][a-z0-9-]{0,62}$.
//
// The check is done by hand rather than by regexp because it sits on the hot
// path of every request, and because its error says what is wrong, which a
// regexp cannot. A name that passes is always exactly one NATS subject token:
// it can never hold '.', '*', '>' or white space.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: %d bytes long, the limit is %d", ErrInvalidName, len(name), MaxNameLen)
	case name[0] < 'a' || name[0] > 'z':
		return fmt.Errorf("%w: %s must start with a lowercase letter a-z", ErrInvalidName, quote(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' {
			continue
		}
		return fmt.Errorf("%w: %s has %s at byte %d; only a-z, 0-9 and '-' are allowed",
			ErrInvalidName, quote(name), describeByte(name, i), i)
	}
	return nil
}

// quote renders untrusted input safely for an error message.
func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strconv.Quote(s)
}

func describeByte(s string, i int) string {
	r, _ := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError {
		return fmt.Sprintf("byte 0x%02x", s[i])
	}
	return strconv.QuoteRune(r)
}
