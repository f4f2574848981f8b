package mkv

import "bytes"

// Hand-building helpers for tests: they write element headers the way odd
// producers do (forced size lengths, unknown sizes of any length), which the
// package's own writer never does.

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// el is an element with a minimal size.
func el(id uint32, payload ...[]byte) []byte {
	return AppendElement(nil, id, cat(payload...))
}

// elN is an element whose size is forced to n bytes.
func elN(id uint32, n int, payload ...[]byte) []byte {
	p := cat(payload...)
	return append(appendVint(AppendID(nil, id), uint64(len(p)), n), p...)
}

// unknownStart is an element header with the unknown-size sentinel of n bytes.
func unknownStart(id uint32, n int) []byte {
	return appendVint(AppendID(nil, id), 1<<(7*n)-1, n)
}

func u(id uint32, v uint64) []byte { return AppendUint(nil, id, v) }

// uN is an unsigned integer element with a payload of exactly n bytes.
func uN(id uint32, n int, v uint64) []byte {
	p := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		p[i] = byte(v)
		v >>= 8
	}
	return el(id, p)
}

func str(id uint32, s string) []byte { return AppendString(nil, id, s) }

func ebmlHeader(docType string) []byte {
	return el(IDEBML, u(IDEBMLVersion, 1), u(IDEBMLReadVersion, 1), str(IDDocType, docType),
		u(IDDocTypeVersion, 4), u(IDDocTypeReadVersion, 2))
}

// simpleBlockPayload is a SimpleBlock payload with a 1-byte track number.
func simpleBlockPayload(track byte, tc int16, flags byte, data []byte) []byte {
	return cat([]byte{0x80 | track, byte(uint16(tc) >> 8), byte(tc), flags}, data)
}

func simpleTagEl(name, value string, children ...[]byte) []byte {
	return el(IDSimpleTag, cat(str(IDTagName, name), str(IDTagString, value)), cat(children...))
}
