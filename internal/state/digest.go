package state

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Digest returns "sha256:<hex>" over the parts. Each part is hashed after its
// length, so moving bytes from one part to the next (the last ipv4 line
// becoming the first ipv6 line) changes the digest. For that reason the digest
// of a single part is not the plain sha256sum of it.
func Digest(parts ...[]byte) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
