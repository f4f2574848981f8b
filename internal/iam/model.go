package iam

import (
	"fmt"
	"regexp"
	"time"
)

// Account is a tenant: its own streams, users, roles and policies.
type Account struct {
	ID      string    `json:"Id"`
	Name    string    `json:"Name"`
	Created time.Time `json:"Created"`
}

// User is a long-term identity in an account; its access keys act with its
// attached policies.
type User struct {
	Account  string    `json:"Account"`
	Name     string    `json:"Name"`
	Policies []string  `json:"Policies"`
	Created  time.Time `json:"Created"`
}

// ARN is the user's IAM ARN.
func (u *User) ARN() string { return fmt.Sprintf("arn:aws:iam::%s:user/%s", u.Account, u.Name) }

// Key status values, as IAM names them.
const (
	KeyActive   = "Active"
	KeyInactive = "Inactive"
)

// AccessKey is a user's long-term key. The secret is stored encrypted
// under the server key; the plaintext lives only in memory.
type AccessKey struct {
	ID        string    `json:"AccessKeyId"`
	Account   string    `json:"Account"`
	User      string    `json:"UserName"`
	Status    string    `json:"Status"`
	SecretEnc []byte    `json:"SecretEnc"`
	Created   time.Time `json:"Created"`

	secret string
}

// StoredPolicy is a named policy document of an account.
type StoredPolicy struct {
	Account  string    `json:"Account"`
	Name     string    `json:"Name"`
	Document string    `json:"Document"`
	Updated  time.Time `json:"Updated"`
}

// ARN is the policy's IAM ARN.
func (p *StoredPolicy) ARN() string {
	return fmt.Sprintf("arn:aws:iam::%s:policy/%s", p.Account, p.Name)
}

// Role is an identity that sessions assume (sts:AssumeRole, or devices
// through a role alias); it acts with its attached policies.
type Role struct {
	Account  string    `json:"Account"`
	Name     string    `json:"Name"`
	Policies []string  `json:"Policies"`
	Created  time.Time `json:"Created"`
	// MaxSessionSeconds caps DurationSeconds of its sessions (IAM's
	// MaxSessionDuration); 0 means 3600.
	MaxSessionSeconds int `json:"MaxSessionSeconds"`
	// Trusted, when not empty, lists who may assume the role through STS:
	// principal ARN patterns ('*' and '?' wildcards), like the principals
	// of a trust policy. Empty: any principal of the account whose own
	// policy allows sts:AssumeRole on the role. (Role aliases name their
	// role explicitly and are not subject to it.)
	Trusted []string `json:"Trusted,omitempty"`
}

// Trusts reports whether the principal with ARN arn may assume the role.
func (r *Role) Trusts(arn string) bool {
	if len(r.Trusted) == 0 {
		return true
	}
	for _, t := range r.Trusted {
		if wildcardMatch(t, arn, false) {
			return true
		}
	}
	return false
}

// ARN is the role's IAM ARN.
func (r *Role) ARN() string { return fmt.Sprintf("arn:aws:iam::%s:role/%s", r.Account, r.Name) }

// RoleAlias names a role that devices exchange their certificate for, as
// AWS IoT role aliases do: GET /role-aliases/{alias}/credentials.
type RoleAlias struct {
	Alias           string `json:"Alias"`
	Account         string `json:"Account"`
	Role            string `json:"Role"`
	DurationSeconds int    `json:"DurationSeconds"`
}

// Device status values.
const (
	DeviceActive  = "ACTIVE"
	DeviceRevoked = "REVOKED"
)

// Device is a registered X.509 certificate bound to a thing name.
type Device struct {
	// Fingerprint is hex(sha256(certificate DER)).
	Fingerprint string    `json:"Fingerprint"`
	Account     string    `json:"Account"`
	Thing       string    `json:"ThingName"`
	Status      string    `json:"Status"`
	NotAfter    time.Time `json:"NotAfter"`
	Created     time.Time `json:"Created"`
}

var (
	reAccountName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	reAccountID   = regexp.MustCompile(`^[0-9]{12}$`)
	reIAMName     = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	rePolicyName  = regexp.MustCompile(`^[\w+=,.@-]{1,128}$`)
	reThingName   = regexp.MustCompile(`^[a-zA-Z0-9:_-]{1,128}$`)
	reAliasName   = regexp.MustCompile(`^[\w=,@-]{1,128}$`)
)
