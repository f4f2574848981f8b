package e2e

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
)

type staticCreds struct{ id, secret string }

func (c staticCreds) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: c.id, SecretAccessKey: c.secret}, nil
}
