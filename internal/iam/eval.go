package iam

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Request is what one authorization decision is about.
type Request struct {
	// Action is service:Operation (matched case-insensitively).
	Action string
	// Resource is the ARN acted on, or "*" for actions on no resource.
	Resource string
	// Tags returns the resource's tags; it is called only when a policy has
	// a condition on aws:ResourceTag, and at most once per decision.
	Tags func() map[string]string
	Now  time.Time
	// SourceIP is the client address (aws:SourceIp); Secure reports TLS
	// (aws:SecureTransport).
	SourceIP netip.Addr
	Secure   bool
}

// Decision is the outcome of evaluating policies.
type Decision int

const (
	// ImplicitDeny: no statement allowed the request.
	ImplicitDeny Decision = iota
	// Allow: a statement allowed it and none denied it.
	Allow
	// ExplicitDeny: a Deny statement matched; nothing overrides it.
	ExplicitDeny
)

func (d Decision) String() string {
	switch d {
	case Allow:
		return "Allow"
	case ExplicitDeny:
		return "ExplicitDeny"
	}
	return "ImplicitDeny"
}

// evalCtx carries one decision's lazily computed inputs.
type evalCtx struct {
	req     *Request
	vars    func(name string) (string, bool)
	tags    map[string]string
	gotTags bool
}

func (e *evalCtx) tag(key string) (string, bool) {
	if !e.gotTags {
		e.gotTags = true
		if e.req.Tags != nil {
			e.tags = e.req.Tags()
		}
	}
	if v, ok := e.tags[key]; ok {
		return v, true
	}
	// Tag keys in condition keys are matched case-insensitively, as IAM
	// does; an exact match above is the common case.
	for k, v := range e.tags {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// Evaluate applies IAM's rule to a set of policies: an explicit Deny in any
// of them wins, else an Allow in any of them, else the request is denied.
// vars resolves policy variables (${aws:username}, ...) and global
// condition keys that belong to the principal.
func Evaluate(policies []*Policy, req *Request, vars func(string) (string, bool)) Decision {
	e := evalCtx{req: req, vars: vars}
	allowed := false
	for _, p := range policies {
		for i := range p.statements {
			st := &p.statements[i]
			if !allowed || st.deny {
				if st.matches(&e) {
					if st.deny {
						return ExplicitDeny
					}
					allowed = true
				}
			}
		}
	}
	if allowed {
		return Allow
	}
	return ImplicitDeny
}

func (st *statement) matches(e *evalCtx) bool {
	if anyMatch(st.actions, e.req.Action, true, e) == st.notAction {
		return false
	}
	if anyMatch(st.resources, e.req.Resource, false, e) == st.notResource {
		return false
	}
	for i := range st.conditions {
		if !st.conditions[i].holds(e) {
			return false
		}
	}
	return true
}

func anyMatch(ps []pattern, s string, fold bool, e *evalCtx) bool {
	for _, p := range ps {
		pat := p.s
		if p.hasVars {
			var ok bool
			if pat, ok = substitute(pat, e.vars); !ok {
				// An unresolvable variable makes the entry match
				// nothing, as IAM does.
				continue
			}
		}
		if wildcardMatch(pat, s, fold) {
			return true
		}
	}
	return false
}

// substitute replaces ${name} with the variable's value. ${*}, ${?} and
// ${$} stand for the literal characters, as in IAM; since the result is
// matched as a pattern, a literal * or ? from ${*} or ${?} still acts as a
// wildcard (a documented simplification). A variable with no value makes
// the whole substitution fail.
func substitute(s string, vars func(string) (string, bool)) (string, bool) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), true
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", false
		}
		b.WriteString(s[:i])
		name := s[i+2 : i+j]
		switch name {
		case "*", "?", "$":
			b.WriteString(name)
		default:
			if vars == nil {
				return "", false
			}
			v, ok := vars(strings.ToLower(name))
			if !ok {
				return "", false
			}
			b.WriteString(v)
		}
		s = s[i+j+1:]
	}
}

// wildcardMatch matches s against an IAM pattern with '*' (any run,
// including none) and '?' (one byte). With fold, s is compared as if
// lower-cased (ASCII), for actions, whose patterns are stored lower-case.
// It is the classic greedy algorithm with one backtracking point: linear
// for the patterns policies hold, at worst len(p)*len(s).
func wildcardMatch(p, s string, fold bool) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		c := s[si]
		if fold && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == c) && p[pi] != '*':
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// value returns a condition key's value(s) for this request.
func (e *evalCtx) value(c *condition) (string, bool) {
	if c.tagKey != "" {
		return e.tag(c.tagKey)
	}
	switch c.key {
	case "aws:currenttime":
		return e.req.Now.UTC().Format(time.RFC3339), true
	case "aws:epochtime":
		return strconv.FormatInt(e.req.Now.Unix(), 10), true
	case "aws:sourceip":
		if !e.req.SourceIP.IsValid() {
			return "", false
		}
		return e.req.SourceIP.String(), true
	case "aws:securetransport":
		return strconv.FormatBool(e.req.Secure), true
	}
	if e.vars != nil {
		return e.vars(c.key)
	}
	return "", false
}

func (c *condition) holds(e *evalCtx) bool {
	v, present := e.value(c)
	if c.op == "Null" {
		// Null: true means "the key is absent".
		return (c.values[0] == "true") == !present
	}
	if !present {
		if c.ifExists {
			return true
		}
		// A negated operator on an absent key holds, as in IAM.
		switch c.op {
		case "StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "NotIpAddress", "DateNotEquals", "NumericNotEquals":
			return true
		}
		return false
	}
	switch c.op {
	case "StringEquals", "StringNotEquals":
		return c.anyString(e, func(want string) bool { return v == want }) == (c.op == "StringEquals")
	case "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase":
		return c.anyString(e, func(want string) bool { return strings.EqualFold(v, want) }) == (c.op == "StringEqualsIgnoreCase")
	case "StringLike", "StringNotLike":
		return c.anyString(e, func(want string) bool { return wildcardMatch(want, v, false) }) == (c.op == "StringLike")
	case "Bool":
		return c.anyString(e, func(want string) bool { return strings.EqualFold(v, want) })
	case "IpAddress", "NotIpAddress":
		a, err := netip.ParseAddr(v)
		if err != nil {
			return c.op == "NotIpAddress"
		}
		in := false
		for _, p := range c.prefixes {
			if p.Contains(a) {
				in = true
			}
		}
		return in == (c.op == "IpAddress")
	}
	// Date* and Numeric*: values of one key are ORed, except for the
	// NotEquals operators, which hold when no value is equal.
	op := strings.TrimPrefix(strings.TrimPrefix(c.op, "Date"), "Numeric")
	negated := op == "NotEquals"
	if negated {
		op = "Equals"
	}
	var cmps []int
	if len(c.dates) > 0 {
		t, err := parseDate(v)
		if err != nil {
			return negated
		}
		for _, d := range c.dates {
			cmps = append(cmps, t.Compare(d))
		}
	} else {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return negated
		}
		for _, n := range c.nums {
			switch {
			case f < n:
				cmps = append(cmps, -1)
			case f > n:
				cmps = append(cmps, 1)
			default:
				cmps = append(cmps, 0)
			}
		}
	}
	for _, cmp := range cmps {
		if cmpHolds(op, cmp) {
			return !negated
		}
	}
	return negated
}

// anyString reports whether any of the condition's values, with policy
// variables substituted, satisfies match: values of one key are ORed.
func (c *condition) anyString(e *evalCtx, match func(string) bool) bool {
	for _, want := range c.values {
		if strings.Contains(want, "${") {
			var ok bool
			if want, ok = substitute(want, e.vars); !ok {
				continue
			}
		}
		if match(want) {
			return true
		}
	}
	return false
}

// cmpHolds applies a comparison operator (the Date*/Numeric* name without
// its prefix) to a comparison result.
func cmpHolds(op string, cmp int) bool {
	switch op {
	case "Equals":
		return cmp == 0
	case "LessThan":
		return cmp < 0
	case "LessThanEquals":
		return cmp <= 0
	case "GreaterThan":
		return cmp > 0
	case "GreaterThanEquals":
		return cmp >= 0
	}
	return false
}
