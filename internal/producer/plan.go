package producer

import (
	"slices"
	"sort"
)

// DefaultAudioFragmentMs is the fragment length of an audio-only stream
// when Fragments is given no target.
const DefaultAudioFragmentMs = 2000

// FragmentPlan is one fragment as it will go on the wire: one Cluster.
type FragmentPlan struct {
	// StartMs is the fragment's start in media time (the PTSms of its key
	// frame); the Cluster Timecode is derived from it.
	StartMs int64
	// DurationMs runs to the next fragment's start (for the last one, to
	// the end of the media). Loop uses it to continue the timeline.
	DurationMs int64
	// Frames in wire order. Their PTSms stay in media time; each
	// SimpleBlock carries PTSms - StartMs.
	Frames []Frame
}

// Fragments groups the frames into fragments the way the producer SDK does
// with key-frame fragmentation: a new fragment at each video key frame, and
// for audio-only media a new one every targetMs (DefaultAudioFragmentMs when
// targetMs <= 0). Within a fragment, video keeps decode order and audio is
// interleaved by timestamp.
//
// Video frames before the first video key frame are dropped, as the SDK
// drops them: a fragment must start with a decodable frame. Audio that comes
// before it (an encoder's priming frame) joins the first fragment, with a
// negative block timecode, so no sound is lost. As on the SDK's wire,
// audio blocks carry no key flag when there is video; in audio-only media
// the first frame of each fragment is flagged key so that a reader can
// find fragment starts.
func (m *Media) Fragments(targetMs int64) []FragmentPlan {
	var plans []FragmentPlan
	if m.Track(VideoTrack) != nil {
		plans = m.videoFragments()
	} else {
		plans = m.timedFragments(targetMs)
	}
	for i := range plans {
		if i+1 < len(plans) {
			plans[i].DurationMs = plans[i+1].StartMs - plans[i].StartMs
		} else {
			plans[i].DurationMs = max(m.DurationMs-plans[i].StartMs, 1)
		}
	}
	return plans
}

func (m *Media) videoFragments() []FragmentPlan {
	var starts []int64
	var video [][]Frame
	var audio []Frame
	for _, f := range m.Frames {
		switch f.Track {
		case VideoTrack:
			// A key frame that is not later than the current fragment's
			// start cannot open a fragment: Cluster timecodes must increase.
			if f.Keyframe && (len(starts) == 0 || f.PTSms > starts[len(starts)-1]) {
				starts = append(starts, f.PTSms)
				video = append(video, nil)
			}
			if len(video) > 0 {
				video[len(video)-1] = append(video[len(video)-1], f)
			}
		default:
			f.Keyframe = false
			audio = append(audio, f)
		}
	}
	if len(starts) == 0 {
		return nil
	}
	// Audio goes to the fragment whose time span holds it, so that no frame
	// of a fragment is earlier than the previous fragment's frames.
	sort.SliceStable(audio, func(i, j int) bool { return audio[i].PTSms < audio[j].PTSms })
	audioOf := make([][]Frame, len(starts))
	for _, f := range audio {
		i := max(0, sort.Search(len(starts), func(i int) bool { return starts[i] > f.PTSms })-1)
		audioOf[i] = append(audioOf[i], f)
	}
	plans := make([]FragmentPlan, len(starts))
	for i := range plans {
		plans[i] = FragmentPlan{StartMs: starts[i], Frames: interleave(video[i], audioOf[i])}
	}
	return plans
}

// interleave merges video in decode order with audio in timestamp order.
// Video frames are placed by an estimate of their decode time: the
// fragment's video timestamps sorted, taken in decode order. With
// B-frames a frame's own PTS would put audio too early or too late.
func interleave(video, audio []Frame) []Frame {
	dts := make([]int64, len(video))
	for i, f := range video {
		dts[i] = f.PTSms
	}
	slices.Sort(dts)
	out := make([]Frame, 0, len(video)+len(audio))
	vi, ai := 0, 0
	// The key frame leads the fragment even when audio starts earlier
	// (priming frames before the first key frame).
	if len(video) > 0 {
		out = append(out, video[0])
		vi = 1
	}
	for vi < len(video) || ai < len(audio) {
		// On a tie video goes first, so the key frame leads the fragment.
		if vi < len(video) && (ai == len(audio) || dts[vi] <= audio[ai].PTSms) {
			out = append(out, video[vi])
			vi++
		} else {
			out = append(out, audio[ai])
			ai++
		}
	}
	return out
}

func (m *Media) timedFragments(targetMs int64) []FragmentPlan {
	if targetMs <= 0 {
		targetMs = DefaultAudioFragmentMs
	}
	frames := slices.Clone(m.Frames)
	sort.SliceStable(frames, func(i, j int) bool { return frames[i].PTSms < frames[j].PTSms })
	var plans []FragmentPlan
	for _, f := range frames {
		open := len(plans) > 0
		if !open || f.PTSms-plans[len(plans)-1].StartMs >= targetMs {
			plans = append(plans, FragmentPlan{StartMs: f.PTSms})
		}
		p := &plans[len(plans)-1]
		f.Keyframe = len(p.Frames) == 0
		p.Frames = append(p.Frames, f)
	}
	return plans
}
