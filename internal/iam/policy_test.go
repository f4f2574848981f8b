package iam

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func mustPolicy(t testing.TB, doc string) *Policy {
	t.Helper()
	p, err := ParsePolicy("p", doc)
	if err != nil {
		t.Fatalf("ParsePolicy: %v\n%s", err, doc)
	}
	return p
}

const arnCam1 = "arn:aws:kinesisvideo:us-west-2:111122223333:stream/cam-1/1700000000000"
const arnCam2 = "arn:aws:kinesisvideo:us-west-2:111122223333:stream/cam-2/1700000000001"

func TestEvaluateIAMRules(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	tags := map[string]string{"site": "lobby", "Env": "prod"}
	cases := []struct {
		name     string
		docs     []string
		action   string
		resource string
		vars     map[string]string
		want     Decision
	}{
		{"no policy denies", nil, "kinesisvideo:PutMedia", arnCam1, nil, ImplicitDeny},
		{"exact allow", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kinesisvideo:PutMedia","Resource":"` + arnCam1 + `"}}`},
			"kinesisvideo:PutMedia", arnCam1, nil, Allow},
		{"action is case-insensitive", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"KinesisVideo:putmedia","Resource":"*"}}`},
			"kinesisvideo:PutMedia", arnCam1, nil, Allow},
		{"resource is case-sensitive", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:kinesisvideo:*:*:stream/CAM-1/*"}}`},
			"kinesisvideo:PutMedia", arnCam1, nil, ImplicitDeny},
		{"wildcard action and resource", []string{`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kinesisvideo:Get*","Resource":"arn:aws:kinesisvideo:*:*:stream/cam-?/*"}]}`},
			"kinesisvideo:GetImages", arnCam2, nil, Allow},
		{"wildcard does not over-match", []string{`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kinesisvideo:Get*","Resource":"*"}]}`},
			"kinesisvideo:PutMedia", arnCam1, nil, ImplicitDeny},
		{"explicit deny wins over allow in another policy", []string{
			`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kinesisvideo:*","Resource":"*"}}`,
			`{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"kinesisvideo:DeleteStream","Resource":"*"}}`},
			"kinesisvideo:DeleteStream", arnCam1, nil, ExplicitDeny},
		{"deny of another action leaves allow", []string{
			`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kinesisvideo:*","Resource":"*"},{"Effect":"Deny","Action":"kinesisvideo:DeleteStream","Resource":"*"}]}`},
			"kinesisvideo:PutMedia", arnCam1, nil, Allow},
		{"NotAction", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":["kinesisvideo:Delete*","iam:*"],"Resource":"*"}}`},
			"kinesisvideo:DeleteStream", arnCam1, nil, ImplicitDeny},
		{"NotResource deny", []string{
			`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"*","NotResource":"arn:aws:kinesisvideo:*:*:stream/cam-1/*"}]}`},
			"kinesisvideo:GetMedia", arnCam2, nil, ExplicitDeny},
		{"tag condition holds", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/site":["garage","lobby"]}}}}`},
			"kinesisvideo:GetMedia", arnCam1, nil, Allow},
		{"tag key matched case-insensitively", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringLike":{"aws:ResourceTag/env":"pro*"}}}}`},
			"kinesisvideo:GetMedia", arnCam1, nil, Allow},
		{"tag condition fails", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/site":"garage"}}}}`},
			"kinesisvideo:GetMedia", arnCam1, nil, ImplicitDeny},
		{"missing tag: StringNotEquals holds", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"aws:ResourceTag/owner":"bob"}}}}`},
			"kinesisvideo:GetMedia", arnCam1, nil, Allow},
		{"missing tag: IfExists holds", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:ResourceTag/owner":"bob"}}}}`},
			"kinesisvideo:GetMedia", arnCam1, nil, Allow},
		{"Null condition", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Null":{"aws:ResourceTag/owner":"true"}}}}`},
			"kinesisvideo:GetMedia", arnCam1, nil, Allow},
		{"time window open", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2026-11-21T09:00:00Z"},"DateLessThan":{"aws:CurrentTime":"2026-11-21T11:00:00Z"}}}}`},
			"kinesisvideo:GetMedia", arnCam1, nil, Allow},
		{"time window closed", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2026-11-21T09:59:59Z"}}}}`},
			"kinesisvideo:GetMedia", arnCam1, nil, ImplicitDeny},
		{"epoch time numeric", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"aws:EpochTime":1900000000}}}}`},
			"kinesisvideo:GetMedia", arnCam1, nil, Allow},
		{"source ip", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}}`},
			"kinesisvideo:GetMedia", arnCam1, nil, Allow},
		{"policy variable in resource", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kinesisvideo:PutMedia","Resource":"arn:aws:kinesisvideo:*:*:stream/${credentials-iot:ThingName}/*"}}`},
			"kinesisvideo:PutMedia", arnCam1, map[string]string{"credentials-iot:thingname": "cam-1"}, Allow},
		{"policy variable names another stream", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kinesisvideo:PutMedia","Resource":"arn:aws:kinesisvideo:*:*:stream/${credentials-iot:ThingName}/*"}}`},
			"kinesisvideo:PutMedia", arnCam2, map[string]string{"credentials-iot:thingname": "cam-1"}, ImplicitDeny},
		{"unresolved variable matches nothing", []string{`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kinesisvideo:PutMedia","Resource":"arn:aws:kinesisvideo:*:*:stream/${aws:username}/*"}}`},
			"kinesisvideo:PutMedia", arnCam1, nil, ImplicitDeny},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ps []*Policy
			for _, d := range tc.docs {
				ps = append(ps, mustPolicy(t, d))
			}
			req := &Request{Action: tc.action, Resource: tc.resource, Now: now, SourceIP: netip.MustParseAddr("10.1.2.3"),
				Tags: func() map[string]string { return tags }}
			vars := func(n string) (string, bool) { v, ok := tc.vars[n]; return v, ok }
			if got := Evaluate(ps, req, vars); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParsePolicyRefusesWhatItWouldNotEnforce(t *testing.T) {
	bad := map[string]string{
		"no version":           `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`,
		"bad effect":           `{"Version":"2012-10-17","Statement":{"Effect":"allow","Action":"*","Resource":"*"}}`,
		"no action":            `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Resource":"*"}}`,
		"no resource":          `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*"}}`,
		"action without colon": `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"PutMedia","Resource":"*"}}`,
		"unknown operator":     `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringSortOf":{"a":"b"}}}}`,
		"unknown field":        `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Sparkle":1}}`,
		"principal":            `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}`,
		"bad date":             `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"soon"}}}}`,
		"unclosed variable":    `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"arn:${aws:username"}}`,
		"both Action kinds":    `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","NotAction":"*","Resource":"*"}}`,
		"trailing data":        `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}} {}`,
		"too large":            `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"` + strings.Repeat("a", MaxPolicyBytes) + `"}}`,
	}
	for name, doc := range bad {
		if _, err := ParsePolicy("p", doc); err == nil {
			t.Errorf("%s: accepted %s", name, doc)
		}
	}
}

func TestWildcardMatch(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*c", "abbbc", true}, {"a*c", "abcd", false},
		{"a?c", "abc", true}, {"a?c", "ac", false}, {"*a*b*", "xxaxxbxx", true}, {"*a*b*", "xxbxxaxx", false},
		{"abc", "abc", true}, {"abc", "abd", false}, {"", "", true}, {"", "a", false},
		{"**", "anything", true}, {"a*", "*", false},
	} {
		if got := wildcardMatch(tc.p, tc.s, false); got != tc.want {
			t.Errorf("wildcardMatch(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}
