package sigv4

import (
	"testing"
)

// BenchmarkVerify measures the hot path: the producer SDK's PutMedia
// (streamed, nine signed headers) and a control-plane call (body hashed),
// with the signing key cached as it is after the first request of the day.
func BenchmarkVerify(b *testing.B) {
	frs := loadFixtures(b, fixtureDirs[0])
	for _, fr := range []fixtureRequest{frs[0], frs[3]} {
		b.Run(fr.URI[1:], func(b *testing.B) {
			r := fr.request(b)
			v := &Verifier{Service: "kinesisvideo", Credentials: fixtureCreds(), Now: fixedNow(fr.amzDate(b))}
			var body []byte
			if !fr.streaming() {
				body = []byte(fr.Body)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(r, body, fr.streaming()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("uncached-key", func(b *testing.B) {
		fr := frs[3]
		r := fr.request(b)
		b.ReportAllocs()
		for b.Loop() {
			v := &Verifier{Service: "kinesisvideo", Credentials: fixtureCreds(), Now: fixedNow(fr.amzDate(b))}
			if _, err := v.Verify(r, nil, true); err != nil {
				b.Fatal(err)
			}
		}
	})
}
