// Package admin is Kinema's admin API: accounts, users, access keys,
// policies, roles, role aliases and device certificates, as JSON operations
// at POST /admin/{Operation}, signed with SigV4 like every KVS call. It owns
// the operations' wire shapes and which IAM action and resource each one is
// checked against; the server's dispatcher (kvsapi) authenticates, checks
// and audits them exactly as it does KVS operations, and `kinema admin`
// is a client of it.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/iam"
)

// PathPrefix is where the admin operations live.
const PathPrefix = "/admin/"

// CA issues device certificates; iotcreds.CA implements it.
type CA interface {
	// Issue makes a key pair and a client certificate for a thing.
	Issue(thing string) (certPEM, keyPEM []byte, err error)
	// Verify checks that a certificate was issued by the CA.
	Verify(cert *x509.Certificate) error
	PEM() []byte
}

// Call is one admin request on its way through an operation.
type Call struct {
	Ctx       context.Context
	Principal *iam.Principal
	Body      []byte
	// Authorize checks the operation's action on resource (an ARN).
	Authorize func(resource string) error
}

// Op is one admin operation.
type Op struct {
	Name   string
	Action string
	Run    func(h *Handler, c *Call) (any, error)
}

// Handler runs admin operations against an IAM service.
type Handler struct {
	IAM *iam.Service
	CA  CA // nil: RegisterDevice is unavailable
	// CredentialEndpoint is host:port of the device credentials endpoint,
	// "" when it is not served.
	CredentialEndpoint string
}

// Ops lists every operation with its action.
func Ops() []Op {
	return []Op{
		{"CreateAccount", "kinema:CreateAccount", (*Handler).createAccount},
		{"ListAccounts", "kinema:ListAccounts", (*Handler).listAccounts},
		{"DeleteAccount", "kinema:DeleteAccount", (*Handler).deleteAccount},
		{"CreateUser", "iam:CreateUser", (*Handler).createUser},
		{"DeleteUser", "iam:DeleteUser", (*Handler).deleteUser},
		{"ListUsers", "iam:ListUsers", (*Handler).listUsers},
		{"CreateAccessKey", "iam:CreateAccessKey", (*Handler).createAccessKey},
		{"UpdateAccessKey", "iam:UpdateAccessKey", (*Handler).updateAccessKey},
		{"RotateAccessKey", "iam:RotateAccessKey", (*Handler).rotateAccessKey},
		{"DeleteAccessKey", "iam:DeleteAccessKey", (*Handler).deleteAccessKey},
		{"ListAccessKeys", "iam:ListAccessKeys", (*Handler).listAccessKeys},
		{"PutPolicy", "iam:CreatePolicy", (*Handler).putPolicy},
		{"GetPolicy", "iam:GetPolicy", (*Handler).getPolicy},
		{"ListPolicies", "iam:ListPolicies", (*Handler).listPolicies},
		{"DeletePolicy", "iam:DeletePolicy", (*Handler).deletePolicy},
		{"AttachUserPolicy", "iam:AttachUserPolicy", attach(iam.AttachUser, false)},
		{"DetachUserPolicy", "iam:DetachUserPolicy", attach(iam.AttachUser, true)},
		{"AttachRolePolicy", "iam:AttachRolePolicy", attach(iam.AttachRole, false)},
		{"DetachRolePolicy", "iam:DetachRolePolicy", attach(iam.AttachRole, true)},
		{"SimulatePolicy", "iam:SimulatePrincipalPolicy", (*Handler).simulatePolicy},
		{"CreateRole", "iam:CreateRole", (*Handler).createRole},
		{"DeleteRole", "iam:DeleteRole", (*Handler).deleteRole},
		{"ListRoles", "iam:ListRoles", (*Handler).listRoles},
		{"CreateRoleAlias", "iot:CreateRoleAlias", (*Handler).createRoleAlias},
		{"DeleteRoleAlias", "iot:DeleteRoleAlias", (*Handler).deleteRoleAlias},
		{"ListRoleAliases", "iot:ListRoleAliases", (*Handler).listRoleAliases},
		{"RegisterDevice", "iot:RegisterCertificate", (*Handler).registerDevice},
		{"RevokeDevice", "iot:UpdateCertificate", (*Handler).revokeDevice},
		{"ListDevices", "iot:ListCertificates", (*Handler).listDevices},
	}
}

// in is the fields operations take; each reads the ones it needs.
type in struct {
	Account                   string            `json:"Account"`
	AccountName               string            `json:"AccountName"`
	AccountID                 string            `json:"AccountId"`
	UserName                  string            `json:"UserName"`
	AccessKeyID               string            `json:"AccessKeyId"`
	Status                    string            `json:"Status"`
	PolicyName                string            `json:"PolicyName"`
	PolicyDocument            string            `json:"PolicyDocument"`
	RoleName                  string            `json:"RoleName"`
	MaxSessionDuration        int               `json:"MaxSessionDuration"`
	TrustedPrincipals         []string          `json:"TrustedPrincipals"`
	ActionName                string            `json:"ActionName"`
	ResourceArn               string            `json:"ResourceArn"`
	ResourceTags              map[string]string `json:"ResourceTags"`
	RoleAlias                 string            `json:"RoleAlias"`
	CredentialDurationSeconds int               `json:"CredentialDurationSeconds"`
	ThingName                 string            `json:"ThingName"`
	CertificatePem            string            `json:"CertificatePem"`
}

func (c *Call) decode() (*in, error) {
	var v in
	if len(strings.TrimSpace(string(c.Body))) == 0 {
		return &v, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(c.Body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return nil, apierr.New("SerializationException", "malformed admin request: %v", err)
	}
	return &v, nil
}

// account resolves the account an operation acts in: the caller's, unless
// it names another, which only the operator may.
func (h *Handler) account(c *Call, v *in) (string, error) {
	if v.Account == "" {
		return c.Principal.Account, nil
	}
	a, ok := h.IAM.Account(v.Account)
	if !ok {
		if c.Principal.Root() {
			return "", apierr.NotFound("account %s does not exist", v.Account)
		}
		return "", apierr.New("AccessDeniedException", "only the server's root key may act in another account")
	}
	if !c.Principal.SameAccount(a.ID) {
		return "", apierr.New("AccessDeniedException", "only the server's root key may act in another account")
	}
	return a.ID, nil
}

func need(field, v string) error {
	if v == "" {
		return apierr.InvalidArg("%s is required", field)
	}
	return nil
}

func iamARN(account, kind, name string) string {
	return "arn:aws:iam::" + account + ":" + kind + "/" + name
}

// prepare decodes the request, finds its account and checks the action on
// the resource made from it.
func (h *Handler) prepare(c *Call, resource func(account string, v *in) (string, error)) (*in, string, error) {
	v, err := c.decode()
	if err != nil {
		return nil, "", err
	}
	acct, err := h.account(c, v)
	if err != nil {
		return nil, "", err
	}
	res, err := resource(acct, v)
	if err != nil {
		return nil, "", err
	}
	if err := c.Authorize(res); err != nil {
		return nil, "", err
	}
	return v, acct, nil
}

// fixed is a resource function for a resource that needs no field.
func fixed(kind string) func(string, *in) (string, error) {
	return func(acct string, _ *in) (string, error) { return iamARN(acct, kind, "*"), nil }
}

func named(kind string, field func(*in) (string, string)) func(string, *in) (string, error) {
	return func(acct string, v *in) (string, error) {
		name, value := field(v)
		if err := need(name, value); err != nil {
			return "", err
		}
		return iamARN(acct, kind, value), nil
	}
}

var (
	byUser   = named("user", func(v *in) (string, string) { return "UserName", v.UserName })
	byPolicy = named("policy", func(v *in) (string, string) { return "PolicyName", v.PolicyName })
	byRole   = named("role", func(v *in) (string, string) { return "RoleName", v.RoleName })
	byAlias  = func(acct string, v *in) (string, error) {
		if err := need("RoleAlias", v.RoleAlias); err != nil {
			return "", err
		}
		return "arn:aws:iot::" + acct + ":rolealias/" + v.RoleAlias, nil
	}
	byThing = func(acct string, v *in) (string, error) {
		if err := need("ThingName", v.ThingName); err != nil {
			return "", err
		}
		return "arn:aws:iot::" + acct + ":thing/" + v.ThingName, nil
	}
)

// accountOps are only for principals of the default account: accounts
// span tenants.
func (h *Handler) defaultAccountOnly(c *Call) error {
	if c.Principal.Account != h.IAM.DefaultAccount() {
		return apierr.New("AccessDeniedException", "accounts are managed from the default account")
	}
	return nil
}

func (h *Handler) createAccount(c *Call) (any, error) {
	if err := h.defaultAccountOnly(c); err != nil {
		return nil, err
	}
	v, err := c.decode()
	if err != nil {
		return nil, err
	}
	if err := need("AccountName", v.AccountName); err != nil {
		return nil, err
	}
	if err := c.Authorize("arn:aws:kinema:::account/" + v.AccountName); err != nil {
		return nil, err
	}
	a, err := h.IAM.CreateAccount(c.Ctx, v.AccountName, v.AccountID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"Account": a}, nil
}

func (h *Handler) listAccounts(c *Call) (any, error) {
	if err := h.defaultAccountOnly(c); err != nil {
		return nil, err
	}
	if err := c.Authorize("arn:aws:kinema:::account/*"); err != nil {
		return nil, err
	}
	return map[string]any{"Accounts": h.IAM.ListAccounts()}, nil
}

func (h *Handler) deleteAccount(c *Call) (any, error) {
	if err := h.defaultAccountOnly(c); err != nil {
		return nil, err
	}
	v, err := c.decode()
	if err != nil {
		return nil, err
	}
	if err := need("Account", v.Account); err != nil {
		return nil, err
	}
	a, ok := h.IAM.Account(v.Account)
	if !ok {
		return nil, apierr.NotFound("account %s does not exist", v.Account)
	}
	if err := c.Authorize("arn:aws:kinema:::account/" + a.Name); err != nil {
		return nil, err
	}
	return nil, h.IAM.DeleteAccount(c.Ctx, a.ID)
}

func (h *Handler) createUser(c *Call) (any, error) {
	v, acct, err := h.prepare(c, byUser)
	if err != nil {
		return nil, err
	}
	u, err := h.IAM.CreateUser(c.Ctx, acct, v.UserName)
	if err != nil {
		return nil, err
	}
	return map[string]any{"User": userOut(u)}, nil
}

func userOut(u *iam.User) map[string]any {
	return map[string]any{"UserName": u.Name, "Arn": u.ARN(), "Account": u.Account, "Policies": u.Policies, "CreateDate": u.Created}
}

func (h *Handler) deleteUser(c *Call) (any, error) {
	v, acct, err := h.prepare(c, byUser)
	if err != nil {
		return nil, err
	}
	return nil, h.IAM.DeleteUser(c.Ctx, acct, v.UserName)
}

func (h *Handler) listUsers(c *Call) (any, error) {
	_, acct, err := h.prepare(c, fixed("user"))
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, u := range h.IAM.ListUsers(acct) {
		out = append(out, userOut(&u))
	}
	return map[string]any{"Users": out}, nil
}

func keyOut(k *iam.AccessKey) map[string]any {
	return map[string]any{"AccessKeyId": k.ID, "UserName": k.User, "Status": k.Status, "CreateDate": k.Created, "Account": k.Account}
}

func newKeyOut(k *iam.NewAccessKey) map[string]any {
	m := keyOut(&k.AccessKey)
	m["SecretAccessKey"] = k.SecretAccessKey
	return map[string]any{"AccessKey": m}
}

func (h *Handler) createAccessKey(c *Call) (any, error) {
	v, acct, err := h.prepare(c, byUser)
	if err != nil {
		return nil, err
	}
	k, err := h.IAM.CreateAccessKey(c.Ctx, acct, v.UserName)
	if err != nil {
		return nil, err
	}
	return newKeyOut(k), nil
}

// keyUser finds the user of an access key, for the resource of key
// operations (IAM checks them on the user).
func (h *Handler) keyUser(acct string, v *in) (string, error) {
	if err := need("AccessKeyId", v.AccessKeyID); err != nil {
		return "", err
	}
	for _, k := range h.IAM.ListAccessKeys(acct, "") {
		if k.ID == v.AccessKeyID {
			return iamARN(acct, "user", k.User), nil
		}
	}
	return "", apierr.NotFound("access key %s does not exist", v.AccessKeyID)
}

func (h *Handler) updateAccessKey(c *Call) (any, error) {
	v, acct, err := h.prepare(c, h.keyUser)
	if err != nil {
		return nil, err
	}
	return nil, h.IAM.SetAccessKeyStatus(c.Ctx, acct, v.AccessKeyID, v.Status)
}

// rotateAccessKey makes a new key for the old key's user and disables the
// old one; the old one is deleted later, once nothing uses it.
func (h *Handler) rotateAccessKey(c *Call) (any, error) {
	v, acct, err := h.prepare(c, h.keyUser)
	if err != nil {
		return nil, err
	}
	var user string
	for _, k := range h.IAM.ListAccessKeys(acct, "") {
		if k.ID == v.AccessKeyID {
			user = k.User
		}
	}
	k, err := h.IAM.CreateAccessKey(c.Ctx, acct, user)
	if err != nil {
		return nil, err
	}
	if err := h.IAM.SetAccessKeyStatus(c.Ctx, acct, v.AccessKeyID, iam.KeyInactive); err != nil {
		return nil, err
	}
	return newKeyOut(k), nil
}

func (h *Handler) deleteAccessKey(c *Call) (any, error) {
	v, acct, err := h.prepare(c, h.keyUser)
	if err != nil {
		return nil, err
	}
	return nil, h.IAM.DeleteAccessKey(c.Ctx, acct, v.AccessKeyID)
}

func (h *Handler) listAccessKeys(c *Call) (any, error) {
	v, acct, err := h.prepare(c, func(acct string, v *in) (string, error) {
		if v.UserName == "" {
			return iamARN(acct, "user", "*"), nil
		}
		return iamARN(acct, "user", v.UserName), nil
	})
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, k := range h.IAM.ListAccessKeys(acct, v.UserName) {
		out = append(out, keyOut(&k))
	}
	return map[string]any{"AccessKeyMetadata": out}, nil
}

func policyOut(p *iam.StoredPolicy) map[string]any {
	return map[string]any{"PolicyName": p.Name, "Arn": p.ARN(), "PolicyDocument": p.Document, "UpdateDate": p.Updated}
}

func (h *Handler) putPolicy(c *Call) (any, error) {
	v, acct, err := h.prepare(c, byPolicy)
	if err != nil {
		return nil, err
	}
	p, err := h.IAM.PutPolicy(c.Ctx, acct, v.PolicyName, v.PolicyDocument)
	if err != nil {
		return nil, err
	}
	return map[string]any{"Policy": policyOut(p)}, nil
}

func (h *Handler) getPolicy(c *Call) (any, error) {
	v, acct, err := h.prepare(c, byPolicy)
	if err != nil {
		return nil, err
	}
	p, err := h.IAM.GetPolicy(acct, v.PolicyName)
	if err != nil {
		return nil, err
	}
	return map[string]any{"Policy": policyOut(p)}, nil
}

func (h *Handler) listPolicies(c *Call) (any, error) {
	_, acct, err := h.prepare(c, fixed("policy"))
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, p := range h.IAM.ListPolicies(acct) {
		out = append(out, policyOut(&p))
	}
	return map[string]any{"Policies": out}, nil
}

func (h *Handler) deletePolicy(c *Call) (any, error) {
	v, acct, err := h.prepare(c, byPolicy)
	if err != nil {
		return nil, err
	}
	return nil, h.IAM.DeletePolicy(c.Ctx, acct, v.PolicyName)
}

// attach checks (Attach|Detach)(User|Role)Policy on the user or role.
func attach(kind string, detach bool) func(*Handler, *Call) (any, error) {
	return func(h *Handler, c *Call) (any, error) {
		res := byUser
		if kind == iam.AttachRole {
			res = byRole
		}
		v, acct, err := h.prepare(c, res)
		if err != nil {
			return nil, err
		}
		if err := need("PolicyName", v.PolicyName); err != nil {
			return nil, err
		}
		name := v.UserName
		if kind == iam.AttachRole {
			name = v.RoleName
		}
		return nil, h.IAM.AttachPolicy(c.Ctx, acct, kind, name, v.PolicyName, detach)
	}
}

// simulatePolicy evaluates an action on a resource for a user (UserName) or
// a role (RoleName, with ThingName as a device session's thing), checked
// on the user or role simulated.
func (h *Handler) simulatePolicy(c *Call) (any, error) {
	v, err := c.decode()
	if err != nil {
		return nil, err
	}
	kind, name, res := iam.AttachUser, v.UserName, byUser
	if v.RoleName != "" {
		kind, name, res = iam.AttachRole, v.RoleName, byRole
	}
	_, acct, err := h.prepare(c, res)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(need("ActionName", v.ActionName), need("ResourceArn", v.ResourceArn)); err != nil {
		return nil, err
	}
	tags := v.ResourceTags
	d, err := h.IAM.Simulate(acct, kind, name, v.ThingName, &iam.Request{Action: v.ActionName, Resource: v.ResourceArn,
		Tags: func() map[string]string { return tags }})
	if err != nil {
		return nil, err
	}
	return map[string]any{"EvalDecision": map[iam.Decision]string{iam.Allow: "allowed", iam.ImplicitDeny: "implicitDeny", iam.ExplicitDeny: "explicitDeny"}[d],
		"ActionName": v.ActionName, "ResourceArn": v.ResourceArn}, nil
}

func roleOut(r *iam.Role) map[string]any {
	return map[string]any{"RoleName": r.Name, "Arn": r.ARN(), "Policies": r.Policies, "MaxSessionDuration": r.MaxSessionSeconds,
		"TrustedPrincipals": r.Trusted, "CreateDate": r.Created}
}

func (h *Handler) createRole(c *Call) (any, error) {
	v, acct, err := h.prepare(c, byRole)
	if err != nil {
		return nil, err
	}
	r, err := h.IAM.CreateRole(c.Ctx, acct, v.RoleName, v.MaxSessionDuration, v.TrustedPrincipals)
	if err != nil {
		return nil, err
	}
	return map[string]any{"Role": roleOut(r)}, nil
}

func (h *Handler) deleteRole(c *Call) (any, error) {
	v, acct, err := h.prepare(c, byRole)
	if err != nil {
		return nil, err
	}
	return nil, h.IAM.DeleteRole(c.Ctx, acct, v.RoleName)
}

func (h *Handler) listRoles(c *Call) (any, error) {
	_, acct, err := h.prepare(c, fixed("role"))
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, r := range h.IAM.ListRoles(acct) {
		out = append(out, roleOut(&r))
	}
	return map[string]any{"Roles": out}, nil
}

func (h *Handler) createRoleAlias(c *Call) (any, error) {
	v, acct, err := h.prepare(c, byAlias)
	if err != nil {
		return nil, err
	}
	if err := need("RoleName", v.RoleName); err != nil {
		return nil, err
	}
	a, err := h.IAM.CreateRoleAlias(c.Ctx, acct, v.RoleAlias, v.RoleName, v.CredentialDurationSeconds)
	if err != nil {
		return nil, err
	}
	return map[string]any{"RoleAlias": a.Alias, "RoleAliasArn": "arn:aws:iot::" + acct + ":rolealias/" + a.Alias,
		"RoleArn": iamARN(acct, "role", a.Role), "CredentialDurationSeconds": a.DurationSeconds}, nil
}

func (h *Handler) deleteRoleAlias(c *Call) (any, error) {
	v, acct, err := h.prepare(c, byAlias)
	if err != nil {
		return nil, err
	}
	return nil, h.IAM.DeleteRoleAlias(c.Ctx, acct, v.RoleAlias)
}

func (h *Handler) listRoleAliases(c *Call) (any, error) {
	_, acct, err := h.prepare(c, func(acct string, _ *in) (string, error) { return "arn:aws:iot::" + acct + ":rolealias/*", nil })
	if err != nil {
		return nil, err
	}
	return map[string]any{"RoleAliases": h.IAM.ListRoleAliases(acct)}, nil
}

// registerDevice binds a certificate to a thing: one it is given (which
// must have been issued by Kinema's CA, since the credentials endpoint
// trusts only that CA), or a new key pair and certificate it issues.
func (h *Handler) registerDevice(c *Call) (any, error) {
	v, acct, err := h.prepare(c, byThing)
	if err != nil {
		return nil, err
	}
	if h.CA == nil {
		return nil, apierr.New("ServiceUnavailableException", "this server has no device CA")
	}
	certPEM, keyPEM := []byte(v.CertificatePem), []byte(nil)
	if v.CertificatePem == "" {
		if certPEM, keyPEM, err = h.CA.Issue(v.ThingName); err != nil {
			return nil, apierr.Internal(err)
		}
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, apierr.InvalidArg("CertificatePem holds no PEM certificate")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, apierr.InvalidArg("CertificatePem: %v", err)
	}
	if err := h.CA.Verify(cert); err != nil {
		return nil, apierr.InvalidArg("the certificate was not issued by this server's device CA: %v", err)
	}
	if time.Now().After(cert.NotAfter) {
		return nil, apierr.InvalidArg("the certificate expired at %s", cert.NotAfter.Format(time.RFC3339))
	}
	sum := sha256.Sum256(cert.Raw)
	fp := hex.EncodeToString(sum[:])
	d, err := h.IAM.RegisterDevice(c.Ctx, acct, v.ThingName, fp, cert.NotAfter)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"ThingName": d.Thing, "CertificateId": fp, "Status": d.Status,
		"CertificatePem": string(certPEM), "CACertificatePem": string(h.CA.PEM())}
	if h.CredentialEndpoint != "" {
		out["CredentialEndpoint"] = h.CredentialEndpoint
	}
	if keyPEM != nil {
		out["PrivateKeyPem"] = string(keyPEM)
	}
	return out, nil
}

func (h *Handler) revokeDevice(c *Call) (any, error) {
	v, acct, err := h.prepare(c, byThing)
	if err != nil {
		return nil, err
	}
	return nil, h.IAM.RevokeDevice(c.Ctx, acct, v.ThingName)
}

func (h *Handler) listDevices(c *Call) (any, error) {
	_, acct, err := h.prepare(c, func(acct string, _ *in) (string, error) { return "arn:aws:iot::" + acct + ":thing/*", nil })
	if err != nil {
		return nil, err
	}
	return map[string]any{"Devices": h.IAM.ListDevices(acct)}, nil
}

// Describe is a one-line summary of a request for the audit log: the
// names it acts on, never secrets or documents.
func Describe(body []byte) string {
	var v in
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	var parts []string
	add := func(k, val string) {
		if val != "" {
			parts = append(parts, k+"="+val)
		}
	}
	add("account", v.Account)
	add("accountName", v.AccountName)
	add("user", v.UserName)
	add("key", v.AccessKeyID)
	add("status", v.Status)
	add("policy", v.PolicyName)
	add("role", v.RoleName)
	add("alias", v.RoleAlias)
	add("thing", v.ThingName)
	return strings.Join(parts, " ")
}
