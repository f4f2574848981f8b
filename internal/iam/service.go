// Package iam owns who may do what in Kinema: accounts (tenants), users and
// their access keys, roles, IAM-style policy documents and their
// evaluation, temporary credentials (session tokens), role aliases and
// registered device certificates, and the audit log of admin actions and
// denials.
//
// Every entity is held in memory and written through to a Store, so that
// authenticating and authorizing a request costs map lookups and a policy
// walk, never a database query. Secret access keys are stored encrypted
// under the server key; session tokens are sealed with it, so temporary
// credentials need no storage and survive restarts until they expire.
//
// Several nodes share one Store (PostgreSQL, package iampg). Each keeps its
// own copy in memory, and the store a version that every write moves:
//   - Reads (authentication, authorization, admin listings) use memory.
//     Follow polls the store's version every second (one single-row
//     query) and reloads everything when it moved, so a change made on
//     another node takes effect here within FollowInterval plus the
//     reload: 0.2 to 0.3 s at 10,000 keys and 1,000 policies on a loaded
//     2-core machine (BenchmarkReload). A key disabled or deleted on node
//     A is thus refused on node B within about 1.3 s; iamtest holds it to
//     2 s. The reload is read outside the lock: requests wait only for
//     the swap.
//   - Polling rather than LISTEN/NOTIFY: a poll needs no dedicated
//     connection, works through transaction-pooling proxies, and cannot
//     miss a change while a connection is down (a notification sent
//     meanwhile is lost, so a NOTIFY design needs the poll anyway).
//     Reloading everything rather than replaying a change log keeps the
//     store a table and a counter; it costs one full read per node per
//     burst of changes, at most once per interval.
//   - Writes (admin calls) first catch up with the store if its version
//     moved, then decide on current state and write with the version they
//     decided on; a write that lost a race with another node is decided
//     again on the newer state (ErrConflict). So an admin call sent to any
//     node sees every change committed before it, and two nodes never both
//     create the same user or give a user a third key.

// Session tokens need no store: any node with the same server key opens
// them. The audit log is each node's own file.
//
// The server's root key (credentials.json, or the environment) is the
// operator: it belongs to the default account and may do everything,
// including creating accounts. Everyone else is denied unless a policy
// allows the action, and a Deny anywhere wins.
package iam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/memo"
	"github.com/kinema/kinema/internal/sigv4"
)

// Options configures a Service.
type Options struct {
	Store     Store
	ServerKey []byte
	// DefaultAccount is the account of the root key and of every stream
	// created before accounts existed.
	DefaultAccount string
	// RootAccessKeyID and RootSecret are the operator's key.
	RootAccessKeyID, RootSecret string
	// Now is the clock for session expiry and time conditions; nil means
	// time.Now. Tests move it forward to expire sessions.
	Now    func() time.Time
	Audit  *Audit
	Logger *slog.Logger // nil discards
}

// FollowInterval is how often Follow polls the store's version: the
// propagation delay between nodes, plus the reload.
const FollowInterval = time.Second

// Service is the in-memory IAM state, written through to its Store. It is
// safe for concurrent use.
type Service struct {
	opt    Options
	seal   *sealer
	mu     sync.RWMutex
	st     state
	policy map[string]*Policy // compiled, by account/name
	// version is the store version st and policy are at.
	version int64
	// followErr is why the last refresh by Follow failed (nil: it did not).
	followErr atomic.Pointer[error]

	sessionPolicies memo.Map[string, *Policy] // by document
}

type state struct {
	accounts map[string]*Account   // by id
	users    map[string]*User      // by account/name
	keys     map[string]*AccessKey // by access key id
	policies map[string]*StoredPolicy
	roles    map[string]*Role
	aliases  map[string]*RoleAlias // by alias
	devices  map[string]*Device    // by fingerprint
}

func qualify(account, name string) string { return account + "/" + name }

// add stores a new entity v under key, in the store (as kind) and then in
// m, refusing a key that is taken. The caller holds s.mu.
func add[T any](ctx context.Context, s *Service, m map[string]*T, kind, key, what string, v *T) error {
	if _, ok := m[key]; ok {
		return exists("%s already exists", what)
	}
	if err := s.write(ctx, put(kind, key, v)); err != nil {
		return err
	}
	m[key] = v
	return nil
}

// list copies the entities of the map of state that of selects and keep
// accepts, in less's order: every listing of the admin API. The map is
// chosen under the lock, since a refresh replaces the whole state.
func list[T any](s *Service, of func(*state) map[string]*T, keep func(*T) bool, less func(a, b *T) bool) []T {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []T
	for _, v := range of(&s.st) {
		if keep(v) {
			out = append(out, *v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return less(&out[i], &out[j]) })
	return out
}

// Open loads every entity from the store. The default account is created
// on first start.
func Open(ctx context.Context, opt Options) (*Service, error) {
	if opt.DefaultAccount == "" {
		return nil, errors.New("iam: DefaultAccount is required")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	seal, err := newSealer(opt.ServerKey)
	if err != nil {
		return nil, err
	}
	s := &Service{opt: opt, seal: seal}
	s.st, s.policy, s.version, err = s.read(ctx)
	if err != nil {
		return nil, fmt.Errorf("iam: loading: %w", err)
	}
	err = s.update(ctx, func() error {
		if _, ok := s.st.accounts[opt.DefaultAccount]; ok {
			return nil // a node starting with others may lose this race
		}
		a := &Account{ID: opt.DefaultAccount, Name: "default", Created: s.now()}
		if err := s.write(ctx, put(kindAccount, a.ID, a)); err != nil {
			return err
		}
		s.st.accounts[a.ID] = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// read loads the whole store into a new state.
func (s *Service) read(ctx context.Context) (state, map[string]*Policy, int64, error) {
	st := state{accounts: map[string]*Account{}, users: map[string]*User{}, keys: map[string]*AccessKey{},
		policies: map[string]*StoredPolicy{}, roles: map[string]*Role{}, aliases: map[string]*RoleAlias{}, devices: map[string]*Device{}}
	pol := map[string]*Policy{}
	recs, v, err := s.opt.Store.All(ctx)
	if err != nil {
		return st, nil, 0, err
	}
	for _, r := range recs {
		if err := s.load(&st, pol, r); err != nil {
			return st, nil, 0, fmt.Errorf("%s %q: %w", r.Kind, r.Key, err)
		}
	}
	return st, pol, v, nil
}

// update runs a mutation under the write lock, on state caught up with
// the store; fn writes with s.write and publishes to memory only once the
// write succeeded. A write that lost a race with another node
// (ErrConflict) is decided again on the newer state.
func (s *Service) update(ctx context.Context, fn func() error) error {
	// Catch up before taking the write lock, so that requests are not held
	// for a reload (a few hundred milliseconds at 10,000 keys); under the
	// lock, catching up again is then one version query.
	if err := s.Refresh(ctx); err != nil {
		return apierr.Internal(fmt.Errorf("iam store: %w", err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 1; ; attempt++ {
		if err := s.syncLocked(ctx); err != nil {
			return apierr.Internal(fmt.Errorf("iam store: %w", err))
		}
		err := fn()
		if !errors.Is(err, ErrConflict) {
			return err
		}
		if attempt == 5 {
			return apierr.Internal(err)
		}
	}
}

// syncLocked reloads when the store moved past memory. The caller holds
// s.mu for writing.
func (s *Service) syncLocked(ctx context.Context) error {
	v, err := s.opt.Store.Version(ctx)
	if err != nil || v == s.version {
		return err
	}
	st, pol, v, err := s.read(ctx)
	if err != nil {
		return err
	}
	s.st, s.policy, s.version = st, pol, v
	return nil
}

// Refresh catches up with changes other nodes wrote to the store: one
// version query, and a reload when it moved. The reload is read and
// decrypted before the lock is taken, so requests are held only for the
// swap.
func (s *Service) Refresh(ctx context.Context) error {
	v, err := s.opt.Store.Version(ctx)
	if err != nil {
		return err
	}
	s.mu.RLock()
	cur := s.version
	s.mu.RUnlock()
	if v == cur {
		return nil
	}
	st, pol, v, err := s.read(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Versions only grow: a write of this node that committed meanwhile
	// is newer than what was read, and kept.
	if v > s.version {
		s.st, s.policy, s.version = st, pol, v
	}
	return nil
}

// Follow refreshes every interval (FollowInterval if 0) until ctx ends:
// what makes a Service on a shared store see other nodes' changes. A
// failed refresh is logged, reported by FollowErr, and retried at the next
// tick; the state in memory keeps serving meanwhile. A store that cannot
// be read whole (a record this node cannot load) keeps the last state
// rather than a partial one: dropping a Deny policy this version cannot
// parse would grant what another node meant to refuse.
func (s *Service) Follow(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = FollowInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.Refresh(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.followErr.Store(&err)
		} else {
			s.followErr.Store(nil)
		}
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			s.opt.Logger.Error("iam: cannot follow the shared store; serving the last state read", "err", err)
			failing = true
		case err == nil && failing:
			s.opt.Logger.Info("iam: following the shared store again")
			failing = false
		}
	}
}

// FollowErr says why this node is not following the shared store (nil
// while it is): its IAM state may be behind the other nodes', so it should
// get no traffic (the readiness endpoint reports it).
func (s *Service) FollowErr() error {
	if p := s.followErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Service) load(st *state, pol map[string]*Policy, r Record) error {
	var err error
	switch r.Kind {
	case kindAccount:
		var v Account
		if err = json.Unmarshal(r.Value, &v); err == nil {
			st.accounts[v.ID] = &v
		}
	case kindUser:
		var v User
		if err = json.Unmarshal(r.Value, &v); err == nil {
			st.users[qualify(v.Account, v.Name)] = &v
		}
	case kindKey:
		var v AccessKey
		if err = json.Unmarshal(r.Value, &v); err == nil {
			var plain []byte
			if plain, err = s.seal.open("access-key:"+v.ID, v.SecretEnc); err != nil {
				return fmt.Errorf("the secret does not decrypt under this server key: %w", err)
			}
			v.secret = string(plain)
			st.keys[v.ID] = &v
		}
	case kindPolicy:
		var v StoredPolicy
		if err = json.Unmarshal(r.Value, &v); err == nil {
			var p *Policy
			if p, err = ParsePolicy(v.Name, v.Document); err == nil {
				st.policies[qualify(v.Account, v.Name)] = &v
				pol[qualify(v.Account, v.Name)] = p
			}
		}
	case kindRole:
		var v Role
		if err = json.Unmarshal(r.Value, &v); err == nil {
			st.roles[qualify(v.Account, v.Name)] = &v
		}
	case kindRoleAlias:
		var v RoleAlias
		if err = json.Unmarshal(r.Value, &v); err == nil {
			st.aliases[v.Alias] = &v
		}
	case kindDevice:
		var v Device
		if err = json.Unmarshal(r.Value, &v); err == nil {
			st.devices[v.Fingerprint] = &v
		}
	default:
		return errors.New("unknown kind")
	}
	return err
}

func (s *Service) now() time.Time {
	if s.opt.Now != nil {
		return s.opt.Now()
	}
	return time.Now()
}

// Now is the clock the service decides with.
func (s *Service) Now() time.Time { return s.now() }

// Audit is the audit log (nil records nothing).
func (s *Service) Audit() *Audit { return s.opt.Audit }

// DefaultAccount is the account of the root key.
func (s *Service) DefaultAccount() string { return s.opt.DefaultAccount }

func put(kind, key string, v any) Record {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // every value is a plain struct
	}
	return Record{Kind: kind, Key: key, Value: b}
}

func del(kind, key string) Record { return Record{Kind: kind, Key: key} }

// write persists changes, if the store is still at the version memory is
// at (else ErrConflict, which update retries); the caller updates memory
// after it succeeds, so memory never holds what the store lost. The caller
// runs inside update.
func (s *Service) write(ctx context.Context, changes ...Record) error {
	v, err := s.opt.Store.Apply(ctx, s.version, changes)
	if errors.Is(err, ErrConflict) {
		return err
	}
	if err != nil {
		return apierr.Internal(fmt.Errorf("iam store: %w", err))
	}
	s.version = v
	return nil
}

func notFound(format string, args ...any) error { return apierr.NotFound(format, args...) }
func exists(format string, args ...any) error {
	return apierr.New("ResourceInUseException", format, args...)
}
func invalid(format string, args ...any) error { return apierr.InvalidArg(format, args...) }

func checkName(field, v string) error {
	if !reIAMName.MatchString(v) {
		return invalid("%s %q must be 1 to 64 characters of letters, digits and +=,.@_-", field, v)
	}
	return nil
}

// ---- accounts ----

// CreateAccount makes a tenant. id may be empty: a random 12-digit id is
// chosen.
func (s *Service) CreateAccount(ctx context.Context, name, id string) (*Account, error) {
	if !reAccountName.MatchString(name) {
		return nil, invalid("account name %q must be 1 to 63 lower-case letters, digits and -", name)
	}
	if id == "" {
		id = randomID("0123456789", 12)
	} else if !reAccountID.MatchString(id) {
		return nil, invalid("account id %q must be 12 digits", id)
	}
	var out *Account
	err := s.update(ctx, func() error {
		for _, a := range s.st.accounts {
			if a.Name == name || a.ID == id {
				return exists("account %s (%s) already exists", a.Name, a.ID)
			}
		}
		a := &Account{ID: id, Name: name, Created: s.now().UTC()}
		if err := s.write(ctx, put(kindAccount, id, a)); err != nil {
			return err
		}
		s.st.accounts[id] = a
		out = a
		return nil
	})
	return out, err
}

// ListAccounts returns every account, by name.
func (s *Service) ListAccounts() []Account {
	return list(s, func(st *state) map[string]*Account { return st.accounts }, func(*Account) bool { return true }, func(a, b *Account) bool { return a.Name < b.Name })
}

// Account finds an account by id or name.
func (s *Service) Account(idOrName string) (*Account, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if a, ok := s.st.accounts[idOrName]; ok {
		return a, true
	}
	for _, a := range s.st.accounts {
		if a.Name == idOrName {
			return a, true
		}
	}
	return nil, false
}

// DeleteAccount removes an account and every identity in it. Its streams
// are the caller's business (they are kept, unreachable, until deleted).
func (s *Service) DeleteAccount(ctx context.Context, id string) error {
	if id == s.opt.DefaultAccount {
		return invalid("the default account cannot be deleted")
	}
	return s.update(ctx, func() error {
		if _, ok := s.st.accounts[id]; !ok {
			return notFound("account %s does not exist", id)
		}
		// Everything of the account, kind by kind: written as deletions first,
		// then dropped from memory once the store has them.
		owned := []struct {
			kind string
			keys []string
			drop func(key string)
		}{
			{kindUser, keysOwnedBy(s.st.users, id, func(v *User) string { return v.Account }), func(k string) { delete(s.st.users, k) }},
			{kindKey, keysOwnedBy(s.st.keys, id, func(v *AccessKey) string { return v.Account }), func(k string) { delete(s.st.keys, k) }},
			{kindPolicy, keysOwnedBy(s.st.policies, id, func(v *StoredPolicy) string { return v.Account }),
				func(k string) { delete(s.st.policies, k); delete(s.policy, k) }},
			{kindRole, keysOwnedBy(s.st.roles, id, func(v *Role) string { return v.Account }), func(k string) { delete(s.st.roles, k) }},
			{kindRoleAlias, keysOwnedBy(s.st.aliases, id, func(v *RoleAlias) string { return v.Account }), func(k string) { delete(s.st.aliases, k) }},
			{kindDevice, keysOwnedBy(s.st.devices, id, func(v *Device) string { return v.Account }), func(k string) { delete(s.st.devices, k) }},
		}
		changes := []Record{del(kindAccount, id)}
		for _, o := range owned {
			for _, k := range o.keys {
				changes = append(changes, del(o.kind, k))
			}
		}
		if err := s.write(ctx, changes...); err != nil {
			return err
		}
		delete(s.st.accounts, id)
		for _, o := range owned {
			for _, k := range o.keys {
				o.drop(k)
			}
		}
		return nil
	})
}

// keysOwnedBy returns the keys of m's entries that belong to account.
func keysOwnedBy[T any](m map[string]*T, account string, accountOf func(*T) string) []string {
	var keys []string
	for k, v := range m {
		if accountOf(v) == account {
			keys = append(keys, k)
		}
	}
	return keys
}

func (s *Service) needAccount(id string) error {
	if _, ok := s.st.accounts[id]; !ok {
		return notFound("account %s does not exist", id)
	}
	return nil
}

// ---- users and keys ----

// CreateUser adds a user to an account.
func (s *Service) CreateUser(ctx context.Context, account, name string) (*User, error) {
	if err := checkName("UserName", name); err != nil {
		return nil, err
	}
	var out *User
	err := s.update(ctx, func() error {
		if err := s.needAccount(account); err != nil {
			return err
		}
		u := &User{Account: account, Name: name, Created: s.now().UTC()}
		if err := add(ctx, s, s.st.users, kindUser, qualify(account, name), "user "+name, u); err != nil {
			return err
		}
		out = u
		return nil
	})
	return out, err
}

// ListUsers returns an account's users, by name.
func (s *Service) ListUsers(account string) []User {
	return list(s, func(st *state) map[string]*User { return st.users }, func(u *User) bool { return u.Account == account }, func(a, b *User) bool { return a.Name < b.Name })
}

// DeleteUser removes a user and its access keys.
func (s *Service) DeleteUser(ctx context.Context, account, name string) error {
	return s.update(ctx, func() error {
		k := qualify(account, name)
		if _, ok := s.st.users[k]; !ok {
			return notFound("user %s does not exist", name)
		}
		changes := []Record{del(kindUser, k)}
		for id, key := range s.st.keys {
			if key.Account == account && key.User == name {
				changes = append(changes, del(kindKey, id))
			}
		}
		if err := s.write(ctx, changes...); err != nil {
			return err
		}
		delete(s.st.users, k)
		for _, c := range changes[1:] {
			delete(s.st.keys, c.Key)
		}
		return nil
	})
}

// NewAccessKey is a created key with its secret, shown once.
type NewAccessKey struct {
	AccessKey
	SecretAccessKey string
}

// CreateAccessKey makes a key for a user. A user has at most two, as in
// IAM, so rotation is create-new, switch, then disable and delete the old.
func (s *Service) CreateAccessKey(ctx context.Context, account, user string) (*NewAccessKey, error) {
	var out *NewAccessKey
	err := s.update(ctx, func() error {
		if _, ok := s.st.users[qualify(account, user)]; !ok {
			return notFound("user %s does not exist", user)
		}
		n := 0
		for _, k := range s.st.keys {
			if k.Account == account && k.User == user {
				n++
			}
		}
		if n >= 2 {
			return apierr.New("ClientLimitExceededException", "user %s already has 2 access keys; delete one first", user)
		}
		id, secret := NewKeyPair("AKIA")
		k := &AccessKey{ID: id, Account: account, User: user, Status: KeyActive, Created: s.now().UTC(),
			SecretEnc: s.seal.seal("access-key:"+id, []byte(secret)), secret: secret}
		if err := s.write(ctx, put(kindKey, id, k)); err != nil {
			return err
		}
		s.st.keys[id] = k
		out = &NewAccessKey{AccessKey: *k, SecretAccessKey: secret}
		return nil
	})
	return out, err
}

// ListAccessKeys returns an account's keys (of one user, if user is set).
// Secrets are not included.
func (s *Service) ListAccessKeys(account, user string) []AccessKey {
	out := list(s, func(st *state) map[string]*AccessKey { return st.keys }, func(k *AccessKey) bool { return k.Account == account && (user == "" || k.User == user) },
		func(a, b *AccessKey) bool {
			return a.Created.Before(b.Created) || a.Created.Equal(b.Created) && a.ID < b.ID
		})
	for i := range out {
		out[i].SecretEnc, out[i].secret = nil, ""
	}
	return out
}

// SetAccessKeyStatus enables (Active) or disables (Inactive) a key.
func (s *Service) SetAccessKeyStatus(ctx context.Context, account, id, status string) error {
	if status != KeyActive && status != KeyInactive {
		return invalid("Status must be Active or Inactive, not %q", status)
	}
	return s.update(ctx, func() error {
		k, ok := s.st.keys[id]
		if !ok || k.Account != account {
			return notFound("access key %s does not exist", id)
		}
		c := *k
		c.Status = status
		if err := s.write(ctx, put(kindKey, id, &c)); err != nil {
			return err
		}
		s.st.keys[id] = &c
		return nil
	})
}

// DeleteAccessKey removes a key.
func (s *Service) DeleteAccessKey(ctx context.Context, account, id string) error {
	return s.update(ctx, func() error {
		k, ok := s.st.keys[id]
		if !ok || k.Account != account {
			return notFound("access key %s does not exist", id)
		}
		if err := s.write(ctx, del(kindKey, id)); err != nil {
			return err
		}
		delete(s.st.keys, id)
		return nil
	})
}

// ---- policies ----

// PutPolicy creates or replaces a named policy in an account.
func (s *Service) PutPolicy(ctx context.Context, account, name, doc string) (*StoredPolicy, error) {
	if !rePolicyName.MatchString(name) {
		return nil, invalid("PolicyName %q must be 1 to 128 characters of letters, digits and +=,.@_-", name)
	}
	p, err := ParsePolicy(name, doc)
	if err != nil {
		return nil, apierr.New("InvalidArgumentException", "%v", err)
	}
	var out *StoredPolicy
	err = s.update(ctx, func() error {
		if err := s.needAccount(account); err != nil {
			return err
		}
		sp := &StoredPolicy{Account: account, Name: name, Document: doc, Updated: s.now().UTC()}
		k := qualify(account, name)
		if err := s.write(ctx, put(kindPolicy, k, sp)); err != nil {
			return err
		}
		s.st.policies[k] = sp
		s.policy[k] = p
		out = sp
		return nil
	})
	return out, err
}

// GetPolicy returns a named policy.
func (s *Service) GetPolicy(account, name string) (*StoredPolicy, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.st.policies[qualify(account, name)]
	if !ok {
		return nil, notFound("policy %s does not exist", name)
	}
	return p, nil
}

// ListPolicies returns an account's policies, by name.
func (s *Service) ListPolicies(account string) []StoredPolicy {
	return list(s, func(st *state) map[string]*StoredPolicy { return st.policies }, func(p *StoredPolicy) bool { return p.Account == account }, func(a, b *StoredPolicy) bool { return a.Name < b.Name })
}

// DeletePolicy removes a policy that nothing is attached to.
func (s *Service) DeletePolicy(ctx context.Context, account, name string) error {
	return s.update(ctx, func() error {
		k := qualify(account, name)
		if _, ok := s.st.policies[k]; !ok {
			return notFound("policy %s does not exist", name)
		}
		for _, u := range s.st.users {
			if u.Account == account && slices.Contains(u.Policies, name) {
				return exists("policy %s is attached to user %s; detach it first", name, u.Name)
			}
		}
		for _, r := range s.st.roles {
			if r.Account == account && slices.Contains(r.Policies, name) {
				return exists("policy %s is attached to role %s; detach it first", name, r.Name)
			}
		}
		if err := s.write(ctx, del(kindPolicy, k)); err != nil {
			return err
		}
		delete(s.st.policies, k)
		delete(s.policy, k)
		return nil
	})
}

// Principal kinds a policy is attached to.
const (
	AttachUser = "user"
	AttachRole = "role"
)

// AttachPolicy attaches (or with detach, detaches) a policy to a user or a
// role.
func (s *Service) AttachPolicy(ctx context.Context, account, kind, name, policy string, detach bool) error {
	return s.update(ctx, func() error {
		if _, ok := s.st.policies[qualify(account, policy)]; !ok && !detach {
			return notFound("policy %s does not exist", policy)
		}
		k := qualify(account, name)
		var list *[]string
		var rec func() Record
		var publish func()
		switch kind {
		case AttachUser:
			u, ok := s.st.users[k]
			if !ok {
				return notFound("user %s does not exist", name)
			}
			c := *u
			c.Policies = slices.Clone(u.Policies)
			list = &c.Policies
			rec = func() Record { return put(kindUser, k, &c) }
			publish = func() { s.st.users[k] = &c }
		case AttachRole:
			r, ok := s.st.roles[k]
			if !ok {
				return notFound("role %s does not exist", name)
			}
			c := *r
			c.Policies = slices.Clone(r.Policies)
			list = &c.Policies
			rec = func() Record { return put(kindRole, k, &c) }
			publish = func() { s.st.roles[k] = &c }
		default:
			return invalid("policies attach to a user or a role, not %q", kind)
		}
		i := slices.Index(*list, policy)
		switch {
		case detach && i < 0:
			return notFound("policy %s is not attached to %s %s", policy, kind, name)
		case detach:
			*list = slices.Delete(*list, i, i+1)
		case i >= 0:
			return nil
		default:
			if len(*list) >= 20 {
				return apierr.New("ClientLimitExceededException", "at most 20 policies may be attached to %s %s", kind, name)
			}
			*list = append(*list, policy)
		}
		// The entity was changed on a copy, published only once stored.
		if err := s.write(ctx, rec()); err != nil {
			return err
		}
		publish()
		return nil
	})
}

// ---- roles ----

// CreateRole makes a role. maxSession 0 means one hour; trusted (may be
// empty) lists who may assume it (Role.Trusted).
func (s *Service) CreateRole(ctx context.Context, account, name string, maxSessionSeconds int, trusted []string) (*Role, error) {
	if err := checkName("RoleName", name); err != nil {
		return nil, err
	}
	for _, t := range trusted {
		if !strings.HasPrefix(t, "arn:") || len(t) > 2048 {
			return nil, invalid("trusted principal %q is not an ARN (pattern)", t)
		}
	}
	if maxSessionSeconds == 0 {
		maxSessionSeconds = 3600
	}
	if maxSessionSeconds < 900 || maxSessionSeconds > 43200 {
		return nil, invalid("MaxSessionDuration must be 900 to 43200 seconds")
	}
	var out *Role
	err := s.update(ctx, func() error {
		if err := s.needAccount(account); err != nil {
			return err
		}
		r := &Role{Account: account, Name: name, Created: s.now().UTC(), MaxSessionSeconds: maxSessionSeconds, Trusted: trusted}
		if err := add(ctx, s, s.st.roles, kindRole, qualify(account, name), "role "+name, r); err != nil {
			return err
		}
		out = r
		return nil
	})
	return out, err
}

// ListRoles returns an account's roles, by name.
func (s *Service) ListRoles(account string) []Role {
	return list(s, func(st *state) map[string]*Role { return st.roles }, func(r *Role) bool { return r.Account == account }, func(a, b *Role) bool { return a.Name < b.Name })
}

// DeleteRole removes a role that no role alias names. Sessions of it stop
// working at once: they are checked against the role on every request.
func (s *Service) DeleteRole(ctx context.Context, account, name string) error {
	return s.update(ctx, func() error {
		k := qualify(account, name)
		if _, ok := s.st.roles[k]; !ok {
			return notFound("role %s does not exist", name)
		}
		for _, a := range s.st.aliases {
			if a.Account == account && a.Role == name {
				return exists("role alias %s names role %s; delete it first", a.Alias, name)
			}
		}
		if err := s.write(ctx, del(kindRole, k)); err != nil {
			return err
		}
		delete(s.st.roles, k)
		return nil
	})
}

// Role looks up a role of an account.
func (s *Service) Role(account, name string) (*Role, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.st.roles[qualify(account, name)]
	return r, ok
}

// ParseRoleARN splits arn:aws:iam::ACCOUNT:role/NAME.
func ParseRoleARN(arn string) (account, name string, ok bool) {
	rest, ok := strings.CutPrefix(arn, "arn:aws:iam::")
	if !ok {
		return "", "", false
	}
	account, res, ok := strings.Cut(rest, ":")
	if !ok {
		return "", "", false
	}
	name, ok = strings.CutPrefix(res, "role/")
	if i := strings.LastIndexByte(name, '/'); i >= 0 { // a role path
		name = name[i+1:]
	}
	return account, name, ok && name != ""
}

// ---- role aliases and devices ----

// CreateRoleAlias names a role for the device credentials endpoint.
func (s *Service) CreateRoleAlias(ctx context.Context, account, alias, role string, durationSeconds int) (*RoleAlias, error) {
	if !reAliasName.MatchString(alias) {
		return nil, invalid("role alias %q must be 1 to 128 characters of letters, digits and =,@_-", alias)
	}
	if durationSeconds == 0 {
		durationSeconds = 3600
	}
	if durationSeconds < 900 || durationSeconds > 43200 {
		return nil, invalid("CredentialDurationSeconds must be 900 to 43200")
	}
	var out *RoleAlias
	err := s.update(ctx, func() error {
		if _, ok := s.st.roles[qualify(account, role)]; !ok {
			return notFound("role %s does not exist", role)
		}
		a := &RoleAlias{Alias: alias, Account: account, Role: role, DurationSeconds: durationSeconds}
		if err := add(ctx, s, s.st.aliases, kindRoleAlias, alias, "role alias "+alias, a); err != nil {
			return err
		}
		out = a
		return nil
	})
	return out, err
}

// ListRoleAliases returns an account's role aliases.
func (s *Service) ListRoleAliases(account string) []RoleAlias {
	return list(s, func(st *state) map[string]*RoleAlias { return st.aliases }, func(a *RoleAlias) bool { return a.Account == account }, func(a, b *RoleAlias) bool { return a.Alias < b.Alias })
}

// DeleteRoleAlias removes a role alias.
func (s *Service) DeleteRoleAlias(ctx context.Context, account, alias string) error {
	return s.update(ctx, func() error {
		if a, ok := s.st.aliases[alias]; !ok || a.Account != account {
			return notFound("role alias %s does not exist", alias)
		}
		if err := s.write(ctx, del(kindRoleAlias, alias)); err != nil {
			return err
		}
		delete(s.st.aliases, alias)
		return nil
	})
}

// RegisterDevice binds a certificate (by the SHA-256 of its DER) to a thing
// name. A thing has one active certificate at a time: registering a new one
// revokes the old, which is how a device's certificate is rotated.
func (s *Service) RegisterDevice(ctx context.Context, account, thing, fingerprint string, notAfter time.Time) (*Device, error) {
	if !reThingName.MatchString(thing) {
		return nil, invalid("thing name %q must be 1 to 128 characters of letters, digits and :_-", thing)
	}
	var out *Device
	err := s.update(ctx, func() error {
		if err := s.needAccount(account); err != nil {
			return err
		}
		if _, ok := s.st.devices[fingerprint]; ok {
			return exists("this certificate is already registered")
		}
		var changes []Record
		var revoked []*Device
		for _, d := range s.st.devices {
			if d.Account == account && d.Thing == thing && d.Status == DeviceActive {
				c := *d
				c.Status = DeviceRevoked
				changes = append(changes, put(kindDevice, c.Fingerprint, &c))
				revoked = append(revoked, &c)
			}
		}
		d := &Device{Fingerprint: fingerprint, Account: account, Thing: thing, Status: DeviceActive, NotAfter: notAfter.UTC(), Created: s.now().UTC()}
		changes = append(changes, put(kindDevice, fingerprint, d))
		if err := s.write(ctx, changes...); err != nil {
			return err
		}
		for _, c := range revoked {
			s.st.devices[c.Fingerprint] = c
		}
		s.st.devices[fingerprint] = d
		out = d
		return nil
	})
	return out, err
}

// RevokeDevice revokes every active certificate of a thing.
func (s *Service) RevokeDevice(ctx context.Context, account, thing string) error {
	return s.update(ctx, func() error {
		var changes []Record
		var revoked []*Device
		for _, d := range s.st.devices {
			if d.Account == account && d.Thing == thing && d.Status == DeviceActive {
				c := *d
				c.Status = DeviceRevoked
				changes = append(changes, put(kindDevice, c.Fingerprint, &c))
				revoked = append(revoked, &c)
			}
		}
		if len(changes) == 0 {
			return notFound("thing %s has no active certificate", thing)
		}
		if err := s.write(ctx, changes...); err != nil {
			return err
		}
		for _, c := range revoked {
			s.st.devices[c.Fingerprint] = c
		}
		return nil
	})
}

// ListDevices returns an account's registered certificates.
func (s *Service) ListDevices(account string) []Device {
	return list(s, func(st *state) map[string]*Device { return st.devices }, func(d *Device) bool { return d.Account == account },
		func(a, b *Device) bool { return a.Thing < b.Thing || a.Thing == b.Thing && a.Created.Before(b.Created) })
}

// Device looks up a certificate by fingerprint.
func (s *Service) Device(fingerprint string) (*Device, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.st.devices[fingerprint]
	return d, ok
}

// RoleAlias looks up a role alias.
func (s *Service) RoleAlias(alias string) (*RoleAlias, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.st.aliases[alias]
	return a, ok
}

var _ sigv4.SessionCredentials = (*Service)(nil)
