// Package s3conf owns how Kinema reaches an S3-compatible store: one
// configuration (endpoint, region, credentials, addressing) and one way to
// build a client from it, shared by the image destinations and the S3 media
// store, so every S3 call Kinema makes behaves the same against MinIO,
// versitygw, Ceph or AWS.
package s3conf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

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
	// Timeout bounds one S3 operation, the SDK's retries included:
	// a store that stalls makes the operation fail instead of hanging
	// whatever waits on it (a PERSISTED ack, a reader). 0: no bound. Users
	// of the client apply it by running each operation through Do.
	Timeout time.Duration
}

// DefaultTimeout is `kinema serve --s3-timeout`'s default: far above what
// a healthy store needs for a PUT of a few megabytes (tens to hundreds of
// milliseconds), and short enough that a producer hears ERROR 5001 well
// before it would give up on the connection itself.
const DefaultTimeout = 20 * time.Second

// Do runs one S3 operation (op, with the SDK's retries) under the
// configured Timeout. When the timeout, not ctx, ended it, the error says
// so.
func (c Config) Do(ctx context.Context, op func(ctx context.Context) error) error {
	if c.Timeout <= 0 {
		return op(ctx)
	}
	octx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	err := op(octx)
	if err != nil && ctx.Err() == nil && errors.Is(octx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within the S3 timeout (%v): %w", c.Timeout, err)
	}
	return err
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
