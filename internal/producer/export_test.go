package producer

// Test helpers for the external test package (which exists so that it can
// import internal/app without an import cycle).
var (
	MediaFileForTest = media.File
	ParseBodyForTest = parseBody
)
