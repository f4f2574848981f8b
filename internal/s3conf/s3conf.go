// Package s3conf owns how Kinema reaches an S3-compatible store: one
// configuration (endpoint, region, credentials, addressing) and one way to
// build a client from it, shared by the image destinations and the S3 media
// store, so every S3 call Kinema makes behaves the same against MinIO,
// versitygw, Ceph or AWS.
package s3conf

import (
	"errors"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Config is an S3-compatible endpoint and Kinema's credentials for it.
type Config struct {
	Endpoint        string // base URL; empty means AWS's endpoint for Region
	Region          string // default us-east-1
	AccessKeyID     string // empty: AWS_ACCESS_KEY_ID from the environment
	SecretAccessKey string // empty: AWS_SECRET_ACCESS_KEY from the environment
	PathStyle       bool   // bucket in the path, not the host name (what most self-hosted stores want)
}

// ErrNoCredentials is returned by Client when neither the configuration
// nor the environment has credentials.
var ErrNoCredentials = errors.New("no S3 credentials are configured (kinema serve: KINEMA_S3_ACCESS_KEY_ID and KINEMA_S3_SECRET_ACCESS_KEY, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")

// Client builds an S3 client.
func (c Config) Client() (*s3.Client, error) {
	id, secret, token := c.AccessKeyID, c.SecretAccessKey, ""
	if id == "" {
		id, secret, token = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")
	}
	if id == "" || secret == "" {
		return nil, ErrNoCredentials
	}
	region := c.Region
	if region == "" {
		region = "us-east-1"
	}
	var endpoint *string
	if c.Endpoint != "" {
		endpoint = aws.String(c.Endpoint)
	}
	return s3.New(s3.Options{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(id, secret, token),
		UsePathStyle: c.PathStyle,
		BaseEndpoint: endpoint,
		// Checksums only where S3 requires them: not every compatible
		// store knows the newer trailing-checksum uploads.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
	}), nil
}
