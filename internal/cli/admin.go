package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kinema/kinema/internal/admin"
)

const adminUsage = `Usage: kinema admin GROUP VERB [flags]

Manages accounts, users, keys, policies, roles and devices through the admin
API of a running server, signed with a key that may (the root key from the
data dir by default, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).

  account create --name NAME [--id 12DIGITS] | list | delete --account ID
  user    create|delete --user NAME | list
  key     create --user NAME | list [--user NAME] | disable|enable|rotate|delete --key AKID
  policy  put --policy NAME --document FILE|JSON | get|delete --policy NAME | list
          attach|detach --policy NAME (--user NAME | --role NAME)
          simulate (--user NAME | --role NAME [--thing NAME]) --action ACTION --resource ARN [--tags K=V,...]
  role    create --role NAME [--max-session SECONDS] [--trust ARN,...] | delete --role NAME | list
  role-alias create --alias NAME --role NAME [--duration SECONDS] | delete --alias NAME | list
  device  register --thing NAME [--cert FILE] [--out DIR [--alias ROLE_ALIAS]] | revoke --thing NAME | list
          (--out writes THING.cert.pem, THING.key.pem, ca.pem and THING.env, the
          AWS_IOT_CORE_* environment of the KVS producer SDK samples)

Every command takes --account ID|NAME (the root key acts in any account),
--endpoint URL (default $KINEMA_ENDPOINT or http://127.0.0.1:4566),
--data-dir DIR (where the root key is read from), --region, --ca FILE.
`

// adminCommands maps GROUP VERB to the operation it calls.
var adminCommands = map[string]string{
	"account create": "CreateAccount", "account list": "ListAccounts", "account delete": "DeleteAccount",
	"user create": "CreateUser", "user delete": "DeleteUser", "user list": "ListUsers",
	"key create": "CreateAccessKey", "key list": "ListAccessKeys", "key disable": "UpdateAccessKey",
	"key enable": "UpdateAccessKey", "key rotate": "RotateAccessKey", "key delete": "DeleteAccessKey",
	"policy put": "PutPolicy", "policy get": "GetPolicy", "policy delete": "DeletePolicy", "policy list": "ListPolicies",
	"policy attach": "Attach%sPolicy", "policy detach": "Detach%sPolicy", "policy simulate": "SimulatePolicy",
	"role create": "CreateRole", "role delete": "DeleteRole", "role list": "ListRoles",
	"role-alias create": "CreateRoleAlias", "role-alias delete": "DeleteRoleAlias", "role-alias list": "ListRoleAliases",
	"device register": "RegisterDevice", "device revoke": "RevokeDevice", "device list": "ListDevices",
}

func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	if len(args) < 2 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, adminUsage)
		return 2
	}
	cmd := args[0] + " " + args[1]
	op, ok := adminCommands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "kinema admin: unknown command %q\n\n%s", cmd, adminUsage)
		return 2
	}
	fs := flag.NewFlagSet("kinema admin "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", firstNonEmpty(env("KINEMA_ENDPOINT"), "http://127.0.0.1:4566"), "server URL")
	dataDir := fs.String("data-dir", "./data", "the server's data dir, to read the root key from when AWS_ACCESS_KEY_ID is not set")
	region := fs.String("region", firstNonEmpty(env("AWS_REGION"), env("AWS_DEFAULT_REGION"), "us-east-1"), "region to sign for")
	caFile := fs.String("ca", "", "CA certificate `FILE` to trust for an HTTPS endpoint")
	out := fs.String("out", "", "device register: write THING.cert.pem, THING.key.pem, ca.pem and THING.env into `DIR`")
	str := map[string]*string{}
	for _, f := range []struct{ name, field, help string }{
		{"account", "Account", "account id or name to act in"},
		{"name", "AccountName", "account name"},
		{"id", "AccountId", "account id (12 digits; default random)"},
		{"user", "UserName", "user name"},
		{"key", "AccessKeyId", "access key id"},
		{"policy", "PolicyName", "policy name"},
		{"document", "PolicyDocument", "policy document: a FILE, or JSON"},
		{"role", "RoleName", "role name"},
		{"alias", "RoleAlias", "role alias"},
		{"thing", "ThingName", "thing name"},
		{"cert", "CertificatePem", "certificate FILE (PEM) to register instead of issuing one"},
		{"action", "ActionName", "policy simulate: the action (kinesisvideo:PutMedia)"},
		{"resource", "ResourceArn", "policy simulate: the resource ARN"},
	} {
		str[f.field] = fs.String(f.name, "", f.help)
	}
	maxSession := fs.Int("max-session", 0, "role: longest session in seconds (900-43200; default 3600)")
	tags := fs.String("tags", "", "policy simulate: the resource's tags, KEY=VALUE,...")
	trust := fs.String("trust", "", "role create: comma-separated principal ARNs (wildcards allowed) that alone may assume the role")
	duration := fs.Int("duration", 0, "role alias: credential lifetime in seconds (900-43200; default 3600)")
	if err := fs.Parse(args[2:]); err != nil {
		return 2
	}

	body := map[string]any{}
	for field, v := range str {
		if *v != "" {
			body[field] = *v
		}
	}
	if *maxSession != 0 {
		body["MaxSessionDuration"] = *maxSession
	}
	if *duration != 0 {
		body["CredentialDurationSeconds"] = *duration
	}
	if *tags != "" {
		m := map[string]string{}
		for _, kv := range strings.Split(*tags, ",") {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		body["ResourceTags"] = m
	}
	if *trust != "" {
		body["TrustedPrincipals"] = strings.Split(*trust, ",")
	}
	switch cmd {
	case "key disable":
		body["Status"] = "Inactive"
	case "key enable":
		body["Status"] = "Active"
	case "policy attach", "policy detach":
		kind := "User"
		if *str["RoleName"] != "" {
			kind = "Role"
		}
		op = fmt.Sprintf(op, kind)
	}
	for _, field := range []string{"PolicyDocument", "CertificatePem"} {
		v, ok := body[field].(string)
		if !ok || strings.HasPrefix(strings.TrimSpace(v), "{") || strings.HasPrefix(v, "-----BEGIN") {
			continue
		}
		b, err := os.ReadFile(v)
		if err != nil {
			fmt.Fprintf(stderr, "kinema admin: %v\n", err)
			return 2
		}
		body[field] = string(b)
	}

	creds, err := adminCredentials(env, *dataDir)
	if err != nil {
		fmt.Fprintf(stderr, "kinema admin: %v\n", err)
		return 2
	}
	client := &http.Client{Timeout: time.Minute}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintf(stderr, "kinema admin: --ca: %v\n", err)
			return 2
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	res, err := callAdmin(ctx, client, strings.TrimRight(*endpoint, "/"), *region, creds, op, body)
	if err != nil {
		fmt.Fprintf(stderr, "kinema admin %s: %v\n", cmd, err)
		return 1
	}
	if cmd == "device register" && *out != "" {
		if err := writeDeviceFiles(*out, res, strings.TrimRight(*endpoint, "/"), *region, *str["RoleAlias"]); err != nil {
			fmt.Fprintf(stderr, "kinema admin device register: %v\n", err)
			return 1
		}
		delete(res, "PrivateKeyPem") // on disk now, not on the terminal
		res["Files"] = *out
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	fmt.Fprintln(stdout, string(b))
	return 0
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// adminCredentials are the environment's AWS credentials, else the root key
// in the data dir.
func adminCredentials(env func(string) string, dataDir string) (aws.Credentials, error) {
	if id, secret := env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: env("AWS_SESSION_TOKEN")}, nil
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "credentials.json"))
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and no root key: %w", err)
	}
	var c struct{ AccessKeyId, SecretAccessKey string }
	if err := json.Unmarshal(b, &c); err != nil {
		return aws.Credentials{}, err
	}
	return aws.Credentials{AccessKeyID: c.AccessKeyId, SecretAccessKey: c.SecretAccessKey}, nil
}

// callAdmin signs and sends one admin operation and decodes its answer.
func callAdmin(ctx context.Context, client *http.Client, endpoint, region string, creds aws.Credentials, op string, body map[string]any) (map[string]any, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+admin.PathPrefix+op, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(b)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "kinesisvideo", region, time.Now()); err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		json.Unmarshal(rb, &e)
		return nil, fmt.Errorf("%s (HTTP %d): %s", resp.Header.Get("x-amzn-ErrorType"), resp.StatusCode, e.Message)
	}
	out := map[string]any{}
	if len(bytes.TrimSpace(rb)) > 0 {
		if err := json.Unmarshal(rb, &out); err != nil {
			return nil, fmt.Errorf("answer is not JSON: %v", err)
		}
	}
	return out, nil
}

// writeDeviceFiles writes the device's certificate, key and CA bundle into
// dir, and THING.env: the environment the KVS producer SDK samples read to
// fetch credentials with the certificate and stream to this server.
func writeDeviceFiles(dir string, res map[string]any, endpoint, region, alias string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	thing, _ := res["ThingName"].(string)
	files := map[string]string{thing + ".cert.pem": "CertificatePem", thing + ".key.pem": "PrivateKeyPem", "ca.pem": "CACertificatePem"}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		v, ok := res[files[name]].(string)
		if !ok {
			continue // a registered certificate comes without its key
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".key.pem") {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), mode); err != nil {
			return err
		}
	}
	var env strings.Builder
	if ep, ok := res["CredentialEndpoint"].(string); ok {
		fmt.Fprintf(&env, "AWS_IOT_CORE_CREDENTIAL_ENDPOINT=%s\n", ep)
	}
	if alias == "" {
		alias = "ROLE_ALIAS" // to fill in: kinema admin role-alias list
	}
	fmt.Fprintf(&env, "AWS_IOT_CORE_ROLE_ALIAS=%s\nAWS_IOT_CORE_THING_NAME=%s\n", alias, thing)
	fmt.Fprintf(&env, "AWS_IOT_CORE_CERT=%s\nAWS_IOT_CORE_PRIVATE_KEY=%s\n",
		filepath.Join(dir, thing+".cert.pem"), filepath.Join(dir, thing+".key.pem"))
	fmt.Fprintf(&env, "AWS_KVS_CACERT_PATH=%s\nCONTROL_PLANE_URI=%s\nAWS_DEFAULT_REGION=%s\n", filepath.Join(dir, "ca.pem"), endpoint, region)
	return os.WriteFile(filepath.Join(dir, thing+".env"), []byte(env.String()), 0o644)
}
