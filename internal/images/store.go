package images

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"os"
	"path/filepath"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kinema/kinema/internal/s3conf"
)

// S3Config is how Kinema reaches the S3-compatible store that s3://
// destinations name: any endpoint (MinIO, versitygw, Ceph, AWS), with
// Kinema's own credentials (KVS writes with the uploader's; a self-hosted
// server has its own).
type S3Config = s3conf.Config

// Store writes images to destinations. It is safe for concurrent use.
type Store struct {
	S3 S3Config

	once      sync.Once
	client    *s3.Client
	clientErr error
}

// Object is one image to write, with KVS's object metadata.
type Object struct {
	Name        string // the object name under the destination's prefix or directory
	Data        []byte
	ContentType string
	Metadata    map[string]string
}

// Put writes one object. Writing the same name again replaces it, so a
// retried generation does not duplicate images.
func (st *Store) Put(ctx context.Context, d Destination, o Object) error {
	if d.Dir != "" {
		return putFile(d.Dir, o)
	}
	st.once.Do(func() { st.client, st.clientErr = st.S3.Client() })
	if st.clientErr != nil {
		return st.clientErr
	}
	key := o.Name
	if d.Prefix != "" {
		key = d.Prefix + "/" + o.Name
	}
	meta := make(map[string]string, len(o.Metadata))
	for k, v := range o.Metadata {
		// Metadata travels in HTTP headers: RFC 2047 keeps non-ASCII values intact.
		meta[k] = mime.BEncoding.Encode("utf-8", v)
	}
	_, err := st.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(d.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(o.Data), ContentLength: aws.Int64(int64(len(o.Data))), ContentType: aws.String(o.ContentType), Metadata: meta})
	if err != nil {
		return fmt.Errorf("s3://%s/%s: %w", d.Bucket, key, err)
	}
	return nil
}

// putFile writes the image and, next to it, its metadata as <name>.json.
// Each is written to a temporary name and renamed, so a reader never sees
// half a file; the metadata goes first, so an image is never without it.
func putFile(dir string, o Object) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	o.Name = fileName(o.Name)
	meta, err := json.MarshalIndent(map[string]any{"ContentType": o.ContentType, "Metadata": o.Metadata}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, o.Name+".json"), meta); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, o.Name), o.Data)
}

func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// fileName keeps an object name inside its directory: the image prefix
// comes from a producer's fragment tag and may hold anything, so path
// separators and NUL become '_', and so does a leading dot.
func fileName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if c == '/' || c == '\\' || c == 0 || (i == 0 && c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}
