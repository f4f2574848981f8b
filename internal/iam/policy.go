package iam

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// MaxPolicyBytes bounds a policy document, as IAM bounds managed policies
// (6,144 characters); a little more room is left for whitespace.
const MaxPolicyBytes = 10 << 10

// Policy is a parsed, validated IAM policy document, ready to evaluate.
type Policy struct {
	Name       string
	Document   string // as given (normalised JSON is not kept: users read back what they wrote)
	statements []statement
	// usesTags reports a condition on aws:ResourceTag/..., so evaluation
	// fetches a stream's tags only for the policies that look at them.
	usesTags bool
}

type statement struct {
	sid         string
	deny        bool
	actions     []pattern // lower-cased: actions are case-insensitive
	notAction   bool
	resources   []pattern
	notResource bool
	conditions  []condition
}

// pattern is an IAM wildcard pattern: '*' matches any run of characters,
// '?' exactly one. hasVars marks ${...} policy variables, substituted per
// request.
type pattern struct {
	s       string
	hasVars bool
}

type condition struct {
	op       string // canonical operator name without IfExists
	ifExists bool
	key      string // lower-cased: condition keys are case-insensitive
	tagKey   string // for aws:ResourceTag/<key>: the tag key as written
	values   []string
	dates    []time.Time
	nums     []float64
	prefixes []netip.Prefix
}

// PolicyError is a policy document that does not parse or validate. It is
// reported to whoever submitted the document (MalformedPolicyDocument).
type PolicyError struct{ Msg string }

func (e *PolicyError) Error() string { return "malformed policy document: " + e.Msg }

func policyErr(format string, args ...any) error {
	return &PolicyError{Msg: fmt.Sprintf(format, args...)}
}

// rawPolicy is the JSON shape. Statement, Action, Resource and condition
// values may each be a single item or a list, so they are decoded by hand.
type rawPolicy struct {
	Version   string          `json:"Version"`
	ID        string          `json:"Id"`
	Statement json.RawMessage `json:"Statement"`
}

type rawStatement struct {
	Sid         string                                `json:"Sid"`
	Effect      string                                `json:"Effect"`
	Action      json.RawMessage                       `json:"Action"`
	NotAction   json.RawMessage                       `json:"NotAction"`
	Resource    json.RawMessage                       `json:"Resource"`
	NotResource json.RawMessage                       `json:"NotResource"`
	Condition   map[string]map[string]json.RawMessage `json:"Condition"`
	Principal   json.RawMessage                       `json:"Principal"`
}

// ParsePolicy parses and validates an identity policy document. Anything
// IAM would refuse, or that Kinema would not enforce as written (an unknown
// condition operator, a Principal element), is an error rather than
// silently ignored: a policy that reads stricter than it acts is a hole.
func ParsePolicy(name, doc string) (*Policy, error) {
	if len(doc) > MaxPolicyBytes {
		return nil, policyErr("the document is %d bytes; at most %d are allowed", len(doc), MaxPolicyBytes)
	}
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	var raw rawPolicy
	if err := dec.Decode(&raw); err != nil {
		return nil, policyErr("%v", err)
	}
	if dec.More() {
		return nil, policyErr("trailing data after the document")
	}
	switch raw.Version {
	case "2012-10-17", "2008-10-17":
	case "":
		return nil, policyErr("Version is required (2012-10-17)")
	default:
		return nil, policyErr("unknown Version %q", raw.Version)
	}
	var raws []rawStatement
	if err := decodeOneOrMany(raw.Statement, &raws); err != nil {
		return nil, policyErr("Statement: %v", err)
	}
	if len(raws) == 0 {
		return nil, policyErr("Statement is required")
	}
	p := &Policy{Name: name, Document: doc}
	for i, rs := range raws {
		st, err := parseStatement(rs)
		if err != nil {
			return nil, policyErr("Statement %d: %v", i+1, err)
		}
		for _, c := range st.conditions {
			if c.tagKey != "" {
				p.usesTags = true
			}
		}
		p.statements = append(p.statements, st)
	}
	return p, nil
}

// decodeOneOrMany decodes a JSON value that is either one T or a list of T.
func decodeOneOrMany[T any](b json.RawMessage, out *[]T) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	dec := func(b []byte, v any) error {
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		return d.Decode(v)
	}
	if b[0] == '[' {
		return dec(b, out)
	}
	var one T
	if err := dec(b, &one); err != nil {
		return err
	}
	*out = []T{one}
	return nil
}

func parseStatement(rs rawStatement) (statement, error) {
	var st statement
	st.sid = rs.Sid
	switch rs.Effect {
	case "Allow":
	case "Deny":
		st.deny = true
	default:
		return st, fmt.Errorf("Effect must be Allow or Deny, not %q", rs.Effect)
	}
	if len(rs.Principal) > 0 {
		return st, fmt.Errorf("identity policies take no Principal element")
	}
	var err error
	if st.actions, st.notAction, err = patterns("Action", rs.Action, rs.NotAction, true); err != nil {
		return st, err
	}
	for _, a := range st.actions {
		if a.s != "*" && !strings.Contains(a.s, ":") {
			return st, fmt.Errorf("action %q is not of the form service:Action", a.s)
		}
	}
	if st.resources, st.notResource, err = patterns("Resource", rs.Resource, rs.NotResource, false); err != nil {
		return st, err
	}
	for op, keys := range rs.Condition {
		for key, vals := range keys {
			c, err := parseCondition(op, key, vals)
			if err != nil {
				return st, err
			}
			st.conditions = append(st.conditions, c)
		}
	}
	return st, nil
}

func patterns(field string, pos, neg json.RawMessage, lower bool) ([]pattern, bool, error) {
	if len(pos) > 0 && len(neg) > 0 {
		return nil, false, fmt.Errorf("%s and Not%s are exclusive", field, field)
	}
	raw, not := pos, false
	if len(neg) > 0 {
		raw, not = neg, true
	}
	var ss []string
	if err := decodeOneOrMany(raw, &ss); err != nil {
		return nil, false, fmt.Errorf("%s: %v", field, err)
	}
	if len(ss) == 0 {
		return nil, false, fmt.Errorf("%s or Not%s is required", field, field)
	}
	out := make([]pattern, 0, len(ss))
	for _, s := range ss {
		if s == "" {
			return nil, false, fmt.Errorf("%s has an empty entry", field)
		}
		if lower {
			s = strings.ToLower(s)
		}
		hasVars := strings.Contains(s, "${")
		if hasVars {
			if err := checkVars(s); err != nil {
				return nil, false, fmt.Errorf("%s %q: %v", field, s, err)
			}
		}
		out = append(out, pattern{s: s, hasVars: hasVars})
	}
	return out, not, nil
}

// Condition operators Kinema evaluates. The value is the kind of operand.
var conditionOps = map[string]string{
	"StringEquals": "string", "StringNotEquals": "string",
	"StringEqualsIgnoreCase": "string", "StringNotEqualsIgnoreCase": "string",
	"StringLike": "string", "StringNotLike": "string",
	"DateEquals": "date", "DateNotEquals": "date",
	"DateLessThan": "date", "DateLessThanEquals": "date",
	"DateGreaterThan": "date", "DateGreaterThanEquals": "date",
	"NumericEquals": "num", "NumericNotEquals": "num",
	"NumericLessThan": "num", "NumericLessThanEquals": "num",
	"NumericGreaterThan": "num", "NumericGreaterThanEquals": "num",
	"Bool":      "bool",
	"IpAddress": "ip", "NotIpAddress": "ip",
	"Null": "bool",
}

func parseCondition(op, key string, raw json.RawMessage) (condition, error) {
	c := condition{op: op, key: strings.ToLower(key)}
	if base, ok := strings.CutSuffix(op, "IfExists"); ok && op != "Null" {
		c.op, c.ifExists = base, true
	}
	kind, ok := conditionOps[c.op]
	if !ok || (c.ifExists && c.op == "Null") {
		return c, fmt.Errorf("unsupported condition operator %q", op)
	}
	if key == "" {
		return c, fmt.Errorf("%s has an empty condition key", op)
	}
	if strings.HasPrefix(c.key, "aws:resourcetag/") {
		c.tagKey = key[len("aws:resourcetag/"):]
		if c.tagKey == "" {
			return c, fmt.Errorf("condition key %q names no tag", key)
		}
	}
	// Values are strings, or JSON numbers and booleans, which IAM accepts
	// and compares as their text.
	var items []json.RawMessage
	if err := decodeOneOrMany(raw, &items); err != nil {
		return c, fmt.Errorf("condition %s %s: %v", op, key, err)
	}
	if len(items) == 0 {
		return c, fmt.Errorf("condition %s %s has no value", op, key)
	}
	for _, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err != nil {
			var n json.Number
			var b bool
			if json.Unmarshal(it, &n) == nil {
				s = n.String()
			} else if json.Unmarshal(it, &b) == nil {
				s = strconv.FormatBool(b)
			} else {
				return c, fmt.Errorf("condition %s %s: values must be strings, numbers or booleans", op, key)
			}
		}
		if strings.Contains(s, "${") {
			if err := checkVars(s); err != nil {
				return c, fmt.Errorf("condition %s %s: %v", op, key, err)
			}
		}
		switch kind {
		case "date":
			t, err := parseDate(s)
			if err != nil {
				return c, fmt.Errorf("condition %s %s: %q is not a date (ISO 8601 or epoch seconds)", op, key, s)
			}
			c.dates = append(c.dates, t)
		case "num":
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return c, fmt.Errorf("condition %s %s: %q is not a number", op, key, s)
			}
			c.nums = append(c.nums, f)
		case "bool":
			if s != "true" && s != "false" {
				return c, fmt.Errorf("condition %s %s: %q is not true or false", op, key, s)
			}
		case "ip":
			pfx, err := netip.ParsePrefix(s)
			if err != nil {
				a, aerr := netip.ParseAddr(s)
				if aerr != nil {
					return c, fmt.Errorf("condition %s %s: %q is not an IP address or CIDR block", op, key, s)
				}
				pfx = netip.PrefixFrom(a, a.BitLen())
			}
			c.prefixes = append(c.prefixes, pfx)
		}
		c.values = append(c.values, s)
	}
	return c, nil
}

// parseDate accepts what IAM accepts for date conditions: ISO 8601 (with or
// without fractional seconds or a time), or epoch seconds.
func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04Z07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Time{}, fmt.Errorf("not a date")
}

// checkVars checks that every ${...} in s is closed and names a variable,
// so a typo is refused when the policy is written, not at request time.
func checkVars(s string) error {
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			return nil
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return fmt.Errorf("unclosed policy variable")
		}
		name := s[i+2 : i+j]
		if name == "" {
			return fmt.Errorf("empty policy variable")
		}
		s = s[i+j+1:]
	}
}
