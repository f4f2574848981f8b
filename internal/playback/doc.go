// Package playback serves recorded and live video to players the way KVS
// does: session URLs for HLS and DASH (their tokens, playlists, manifests
// and media resources) and GetClip. A session is self-contained: its
// parameters travel in a signed, expiring token, so serving a resource
// needs no session table. Packaging (fMP4, MPEG-TS, MP4) is delegated to
// internal/media/fmp4; fragments come from the archive, and the newest ones
// from the live hub as soon as they are RECEIVED.
package playback
