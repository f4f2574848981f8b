package iam

import (
	"net/netip"
	"testing"
	"time"
)

// FuzzParsePolicy feeds arbitrary documents to the policy parser and, when
// one parses, evaluates it. Properties:
//
//   - neither parsing nor evaluating panics, whatever the document or the
//     request (the parser is reached by anyone allowed iam:CreatePolicy, and
//     session policies by any caller of AssumeRole);
//   - evaluation is deterministic;
//   - a policy whose statements are all Deny never allows anything, and a
//     Deny statement added for everything (Action and Resource "*") turns
//     every decision into ExplicitDeny: a deny always wins.
func FuzzParsePolicy(f *testing.F) {
	f.Add(`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kinesisvideo:PutMedia","Resource":"arn:aws:kinesisvideo:*:*:stream/cam-1/*"}}`,
		"kinesisvideo:PutMedia", "arn:aws:kinesisvideo:us-west-2:000000000000:stream/cam-1/1")
	f.Add(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotAction":["kinesisvideo:Get*"],"NotResource":"*"},`+
		`{"Effect":"Allow","Action":"*","Resource":"${aws:username}","Condition":{"StringLikeIfExists":{"aws:ResourceTag/site":["a*","?b"]},"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}}]}`,
		"kinesisvideo:GetMedia", "alice")
	f.Add(`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","::1"]},"NumericLessThan":{"aws:EpochTime":1e10},"Bool":{"aws:SecureTransport":false},"Null":{"aws:ResourceTag/x":"true"}}}}`,
		"iam:CreateUser", "*")
	f.Fuzz(func(t *testing.T, doc, action, resource string) {
		p, err := ParsePolicy("fuzz", doc)
		if err != nil {
			if _, ok := err.(*PolicyError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		req := &Request{Action: action, Resource: resource, Now: time.Unix(1795000000, 0),
			SourceIP: netip.MustParseAddr("10.1.2.3"), Tags: func() map[string]string { return map[string]string{"site": "abc"} }}
		vars := func(n string) (string, bool) {
			if n == "aws:username" {
				return "alice", true
			}
			return "", false
		}
		d := Evaluate([]*Policy{p}, req, vars)
		if again := Evaluate([]*Policy{p}, req, vars); again != d {
			t.Fatalf("not deterministic: %v then %v", d, again)
		}
		allDeny := true
		for _, st := range p.statements {
			allDeny = allDeny && st.deny
		}
		if allDeny && d == Allow {
			t.Fatalf("a policy of Deny statements allowed %s on %s", action, resource)
		}
		denyAll := mustParse(t, `{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}`)
		if got := Evaluate([]*Policy{p, denyAll}, req, vars); got != ExplicitDeny {
			// "*" matches any action, even an empty one: a deny of
			// everything wins whatever the other policy says.
			t.Fatalf("deny-all next to the policy gave %v", got)
		}
	})
}

func mustParse(t *testing.T, doc string) *Policy {
	p, err := ParsePolicy("p", doc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
