package state

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
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

// Section is one named text of a SectionsDigest: a family's rules, say.
type Section struct {
	Name string
	// Write writes the text to the digest, which never fails a write:
	// an error is the writer's own, and SectionsDigest's.
	Write func(io.Writer) error
}

// SectionsDigest returns "sha256:<hex>" over head and then each section's
// name, on a line of its own, and its text. It is the one digest of rules:
// the rules digest a generation records (its families' files, named by
// family key) and a plan's fingerprint (its live owned rules, after a
// line naming the backend) are such digests, so that a file's bytes and
// the rules they were written from digest the same. Unlike Digest it
// hashes no lengths: the digests recorded in state directories and saved
// plans were made so, and must still match.
func SectionsDigest(head string, sections ...Section) (string, error) {
	h := sha256.New()
	io.WriteString(h, head)
	for _, s := range sections {
		io.WriteString(h, s.Name+"\n")
		if err := s.Write(h); err != nil {
			return "", err
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
