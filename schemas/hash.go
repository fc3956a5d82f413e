package schemas

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// Hash identifies a schema by its meaning rather than its bytes, so that the
// registry and the gateway can tell whether a redeployed function changed its
// contract: two schemas that differ only in white space or key order hash the
// same. The canonical form is the document decoded with numbers kept as
// written and encoded again with object keys sorted. Numbers are not
// normalised ("1" and "1.0" hash differently), which errs on the side of
// reporting a change.
//
// Bytes that are not a single valid JSON document (see Decode) are hashed as
// they are, so Hash never fails. The result is "sha256:" and 64 hex digits.
func Hash(raw []byte) string {
	doc, err := Decode(raw, DecodeLimits{MaxDepth: maxSchemaDepth})
	if err != nil {
		return digest(raw)
	}
	return hashDoc(raw, doc)
}

// hashDoc is Hash(raw) for a raw that Decode has already turned into doc.
func hashDoc(raw []byte, doc any) string {
	return digest(canonical(raw, doc))
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// canonical encodes doc, decoded from raw, with object keys sorted; raw
// stands for itself if doc cannot be encoded.
func canonical(raw []byte, doc any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Escaping <, > and & is for embedding in HTML; a canonical form has no
	// reason to differ from the text a person wrote.
	enc.SetEscapeHTML(false)
	// encoding/json writes map keys sorted, which is the canonical order.
	if err := enc.Encode(doc); err != nil {
		return raw
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
