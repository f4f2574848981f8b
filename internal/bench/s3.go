package bench

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kinema/kinema/internal/archive/s3media"
	"github.com/kinema/kinema/internal/s3conf"
)

// S3Usage counts the objects and bytes under an s3://bucket/prefix media
// URL. During an ingest run nothing is freed or rewritten, so the object
// count is the number of PUTs the server made.
func S3Usage(ctx context.Context, cfg s3conf.Config, mediaURL string) (objects, bytes int64, err error) {
	bucket, prefix, err := s3media.ParseURL(mediaURL)
	if err != nil {
		return 0, 0, err
	}
	c, err := cfg.Client()
	if err != nil {
		return 0, 0, err
	}
	if prefix != "" {
		prefix += "/"
	}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix + "seg/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, 0, err
		}
		for _, o := range page.Contents {
			objects++
			bytes += aws.ToInt64(o.Size)
		}
	}
	return objects, bytes, nil
}
