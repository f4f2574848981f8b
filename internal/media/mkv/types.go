package mkv

// Element IDs Kinema reads or writes, with their length-marker bits kept
// (the usual way Matroska IDs are written down).
const (
	IDEBML               = 0x1A45DFA3
	IDEBMLVersion        = 0x4286
	IDEBMLReadVersion    = 0x42F7
	IDEBMLMaxIDLength    = 0x42F2
	IDEBMLMaxSizeLength  = 0x42F3
	IDDocType            = 0x4282
	IDDocTypeVersion     = 0x4287
	IDDocTypeReadVersion = 0x4285

	IDSegment     = 0x18538067
	IDSeekHead    = 0x114D9B74
	IDInfo        = 0x1549A966
	IDTracks      = 0x1654AE6B
	IDCluster     = 0x1F43B675
	IDCues        = 0x1C53BB6B
	IDChapters    = 0x1043A770
	IDAttachments = 0x1941A469
	IDTags        = 0x1254C367

	IDSegmentUID    = 0x73A4
	IDTimecodeScale = 0x2AD7B1
	IDDuration      = 0x4489
	IDTitle         = 0x7BA9
	IDMuxingApp     = 0x4D80
	IDWritingApp    = 0x5741

	IDTrackEntry        = 0xAE
	IDTrackNumber       = 0xD7
	IDTrackUID          = 0x73C5
	IDTrackType         = 0x83
	IDTrackName         = 0x536E
	IDCodecID           = 0x86
	IDCodecPrivate      = 0x63A2
	IDDefaultDuration   = 0x23E383
	IDVideo             = 0xE0
	IDPixelWidth        = 0xB0
	IDPixelHeight       = 0xBA
	IDAudio             = 0xE1
	IDSamplingFrequency = 0xB5
	IDChannels          = 0x9F
	IDBitDepth          = 0x6264

	IDTimecode       = 0xE7
	IDPosition       = 0xA7
	IDPrevSize       = 0xAB
	IDSimpleBlock    = 0xA3
	IDBlockGroup     = 0xA0
	IDBlock          = 0xA1
	IDBlockDuration  = 0x9B
	IDReferenceBlock = 0xFB

	IDTag        = 0x7373
	IDTargets    = 0x63C0
	IDSimpleTag  = 0x67C8
	IDTagName    = 0x45A3
	IDTagString  = 0x4487
	IDTagBinary  = 0x4485
	IDTagLang    = 0x447A
	IDTagDefault = 0x4484

	IDVoid  = 0xEC
	IDCRC32 = 0xBF
)

// Track types as Matroska numbers them.
const (
	TrackTypeVideo    = 1
	TrackTypeAudio    = 2
	TrackTypeSubtitle = 0x11
)

// DefaultTimecodeScale is the Matroska default: one tick is one millisecond.
const DefaultTimecodeScale = 1_000_000

// Track is one TrackEntry.
type Track struct {
	Number            uint64
	UID               uint64
	Type              uint64
	Name              string
	CodecID           string
	CodecPrivate      []byte
	DefaultDuration   uint64 // ns per frame; 0 when absent
	PixelWidth        uint64
	PixelHeight       uint64
	SamplingFrequency float64
	Channels          uint64
	BitDepth          uint64
}

// Header is what precedes the first Cluster of a Segment: the parts of the
// EBML header, Info and Tracks that Kinema keeps.
type Header struct {
	TimecodeScale uint64 // ns per tick; DefaultTimecodeScale when absent
	SegmentUID    []byte
	Title         string
	MuxingApp     string
	WritingApp    string
	Tracks        []Track
}

// SimpleTag is one SimpleTag. Nested SimpleTags are flattened, in document
// order, into the list that holds their parent.
type SimpleTag struct {
	Name   string
	Value  string // TagString; empty when absent
	Binary []byte // TagBinary, when present
}

// Block is one SimpleBlock or BlockGroup of a Cluster.
type Block struct {
	Track    uint64
	Timecode int16  // relative to the Cluster timecode, in TimecodeScale ticks
	Flags    byte   // SimpleBlock flags byte (for a BlockGroup: the Block's flags byte)
	Keyframe bool   // SimpleBlock key flag, or a BlockGroup without ReferenceBlock
	Group    bool   // came from a BlockGroup
	Duration uint64 // BlockDuration in ticks, when the BlockGroup has one
	// Element is the element's payload as received: the SimpleBlock payload,
	// or the whole BlockGroup payload. Writers re-wrap it unchanged.
	Element []byte
}

// EventType tells which field of an Event is set.
type EventType int

const (
	// EventHeader: EBML header, Segment start, Info and Tracks were read; Event.Header is set.
	EventHeader EventType = iota + 1
	// EventClusterStart: a Cluster began and its Timecode was read; Event.ClusterTimecode is set.
	EventClusterStart
	// EventBlock: a SimpleBlock or BlockGroup of the current Cluster; Event.Block is set.
	EventBlock
	// EventTags: one Segment-level Tags element; Event.Tags holds its SimpleTags.
	EventTags
	// EventResync: the stream did not start with an element the reader could
	// use; Event.Skipped bytes were discarded up to the next Cluster.
	EventResync
)

// Event is one step of a streaming read.
type Event struct {
	Type            EventType
	Offset          int64 // stream offset of the element that produced the event
	Header          *Header
	ClusterTimecode uint64
	Block           Block
	Tags            []SimpleTag
	Skipped         int64
}
