package sqlindex

import (
	"context"
	"database/sql"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/sqlrows"
	"github.com/kinema/kinema/internal/stream"
)

// ImageGenerationConfig returns the stream's configuration.
func (x *Index) ImageGenerationConfig(ctx context.Context, streamID int64) (*stream.ImageGenerationConfig, error) {
	return sqlrows.ImageGenerationConfig(x.r.QueryRowContext(ctx, `SELECT `+sqlrows.ImageGenerationCols+`
		FROM image_generation g JOIN streams s ON s.id = g.stream_id WHERE g.stream_id = ? AND s.deleted = 0`, streamID))
}

// SetImageGenerationConfig replaces (or, with nil, deletes) the stream's configuration.
func (x *Index) SetImageGenerationConfig(ctx context.Context, streamID int64, c *stream.ImageGenerationConfig) error {
	return x.tx(ctx, func(tx *sql.Tx) error {
		var live int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM streams WHERE id = ? AND deleted = 0`, streamID).Scan(&live); err != nil {
			return err
		}
		if live == 0 {
			return archive.ErrNotFound
		}
		if c == nil {
			_, err := tx.ExecContext(ctx, `DELETE FROM image_generation WHERE stream_id = ?`, streamID)
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO image_generation (stream_id, status, selector, destination_uri,
			destination_region, sampling_ms, format, jpeg_quality, width_pixels, height_pixels) VALUES (?,?,?,?,?,?,?,?,?,?)`,
			streamID, c.Status, c.ImageSelectorType, c.DestinationURI, c.DestinationRegion, c.SamplingIntervalMs,
			c.Format, c.JPEGQuality, c.WidthPixels, c.HeightPixels)
		return err
	})
}
