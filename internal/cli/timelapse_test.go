package cli

import "testing"

// The time-lapse download is counted as it streams in, in whatever pieces
// the network hands over: the count must not depend on the pieces, and
// nothing the server sends may panic the client.
func FuzzFragmentCounter(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		var whole, pieces fragmentCounter
		whole.Write(data)
		step := int(split)%64 + 1
		for i := 0; i < len(data); i += step {
			pieces.Write(data[i:min(i+step, len(data))])
		}
		if whole.frames != pieces.frames || whole.broken != pieces.broken {
			t.Fatalf("in one piece %d frames (broken %v), in pieces of %d: %d (broken %v)",
				whole.frames, whole.broken, step, pieces.frames, pieces.broken)
		}
	})
}

// A fragmented MP4 of three frames counts three.
func TestFragmentCounter(t *testing.T) {
	var c fragmentCounter
	box := func(typ string, payload int) []byte {
		b := []byte{0, 0, 0, byte(8 + payload)}
		return append(append(b, typ...), make([]byte, payload)...)
	}
	var stream []byte
	stream = append(stream, box("ftyp", 12)...)
	stream = append(stream, box("moov", 40)...)
	for range 3 {
		stream = append(stream, box("moof", 20)...)
		stream = append(stream, box("mdat", 100)...)
	}
	for _, b := range stream {
		c.Write([]byte{b})
	}
	if c.frames != 3 || c.broken {
		t.Fatalf("%+v", c)
	}
}
