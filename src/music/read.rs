//! Reading Standard MIDI Files the way the training data was read (spec §2.1–2.2, Aria 2024).
//!
//! The quirks are kept on purpose, because they set the timing and in-chord order the model saw:
//! per-(pitch, channel) note stacks closed at note-off, notes emitted in note-off order, a stable
//! sort by start tick, sustain applied per channel, times in Python-rounded milliseconds measured
//! from the first note.
//!
//! Choices where the spec is silent or the input is broken:
//! - SMPTE time division is converted exactly: `fps · ticks_per_frame` ticks per second
//!   (29.97 fps = 30000/1001); tempo events do not apply to such files (SMF rule).
//! - A tempo event of 0 µs/beat would collapse the following music into one instant: it is
//!   ignored and reported as [`Warning::ZeroTempoIgnored`].
//! - Before the first tempo event the SMF default of 500,000 µs/beat applies. (The stored Aria
//!   code lets the first tempo event reach back to tick 0; the two differ only when a file's first
//!   note precedes its first tempo event.)
//! - A note-off at the very tick of its note-on, with no older note of that key to close, makes
//!   Aria forget the key: the zero-length note is dropped ([`Warning::ZeroLengthNotesDropped`]).
//! - Midly is lenient with broken files; we are not: a chunk cut short or an unreadable event is
//!   an error ([`MusicError::Truncated`]).

use std::fmt;
use std::path::Path;

use midly::Timing;

use super::error::MusicError;
use super::quantize::{round_half_even, SEGMENT_MS};
use super::segment::{Piece, PlayedNote};
use super::smf::{Event, Events};

/// MIDI channel 10 (index 9): General MIDI drums, dropped by ImprovNet's data builder.
const DRUM_CHANNEL: u8 = 9;
/// Tempo assumed until the first tempo event: 120 bpm.
const DEFAULT_US_PER_BEAT: u32 = 500_000;
/// Latest note start that still gets a `u32` window index.
const MAX_START_MS: u64 = u32::MAX as u64 * SEGMENT_MS as u64;

/// A MIDI file as performed notes, with what was noticed while reading it.
#[derive(Clone, Debug, PartialEq)]
pub struct Performance {
    /// Notes in tokenizer order: stable-sorted by start, times from the first note.
    pub notes: Vec<PlayedNote>,
    /// The tempo map in force (empty for SMPTE files, where tempo does not apply).
    pub tempo_changes: Vec<TempoChange>,
    pub warnings: Vec<Warning>,
    /// Ticks per quarter note; 0 for SMPTE files (see `time_division`).
    pub ticks_per_quarter: u16,
    pub time_division: TimeDivision,
    /// Silence before the first note, removed from `notes` (spec §2.2). Audio-aligned tools
    /// (e.g. structure analysis on a rendering) need it to map back to file time.
    pub leading_silence_ms: u64,
    /// Where the notes came from (file name), for messages.
    pub source: String,
}

/// One entry of the tempo map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TempoChange {
    pub tick: u64,
    /// Time of the change from the start of the file (tick 0), not from the first note.
    pub ms: u64,
    pub us_per_beat: u32,
}

/// How the file counts ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeDivision {
    TicksPerQuarter(u16),
    /// `fps` is 24, 25, 29 (meaning 29.97) or 30.
    Smpte {
        fps: u8,
        ticks_per_frame: u8,
    },
}

/// Something odd in a file that was still read. The CLI decides whether it matters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// A program outside the piano family (0–7): the model only knows piano (spec §2.1).
    NonPianoProgram {
        program: u8,
        channel: u8,
    },
    DrumsDropped {
        count: usize,
    },
    /// Note-ons never released: Aria drops them, so do we.
    UnclosedNotes {
        count: usize,
    },
    /// Note-on and note-off at the same tick (see the module notes).
    ZeroLengthNotesDropped {
        count: usize,
    },
    ZeroTempoIgnored {
        tick: u64,
    },
    /// The header promises more tracks than the file holds.
    MissingTracks {
        declared: u16,
        found: usize,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::NonPianoProgram { program, channel } => write!(
                f,
                "channel {} uses program {program}, not a piano (0-7); its notes are read as piano",
                channel + 1
            ),
            Warning::DrumsDropped { count } => {
                write!(f, "{count} drum notes dropped (MIDI channel 10)")
            }
            Warning::UnclosedNotes { count } => {
                write!(f, "{count} notes never released were dropped")
            }
            Warning::ZeroLengthNotesDropped { count } => {
                write!(f, "{count} zero-length notes dropped")
            }
            Warning::ZeroTempoIgnored { tick } => {
                write!(f, "tempo 0 us/beat at tick {tick} ignored")
            }
            Warning::MissingTracks { declared, found } => write!(
                f,
                "header declares {declared} tracks but the file holds {found}"
            ),
        }
    }
}

impl Performance {
    /// Warnings as `file: message` lines, ready to print.
    pub fn warning_messages(&self) -> Vec<String> {
        self.warnings
            .iter()
            .map(|w| format!("{}: {w}", self.source))
            .collect()
    }

    /// Quantize into T-segments (spec §2.2).
    pub fn to_piece(&self) -> Piece {
        Piece::from_played(&self.notes)
    }
}

impl Piece {
    /// Read a MIDI file straight into T-segments. Use [`read_midi`] to see the warnings.
    pub fn from_midi(path: &Path) -> Result<Piece, MusicError> {
        Ok(read_midi(path)?.to_piece())
    }
}

/// Read a MIDI file from disk (spec §2.1–2.2).
pub fn read_midi(path: &Path) -> Result<Performance, MusicError> {
    let bytes = std::fs::read(path).map_err(|io| MusicError::Read {
        path: path.to_path_buf(),
        io,
    })?;
    parse_midi(&bytes, &path.display().to_string())
}

/// A note-on of the file, in ticks, paired with its note-off while its track is read.
#[derive(Clone, Copy, Debug)]
struct TickNote {
    start: u64,
    end: u64,
    /// Position among the track's closed notes: the note-off order that orders a chord.
    closed_as: u32,
    /// The next open note of the same (channel, key), or [`NONE`].
    next: u32,
    pitch: u8,
    channel: u8,
    velocity: u8,
    state: NoteState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NoteState {
    Open,
    Closed,
    /// Closed at its own start tick with nothing older to close (see the module notes).
    Dropped,
}

/// No note: the end of an open-note list.
const NONE: u32 = u32::MAX;

/// Index of a (channel, key) note stack.
fn open_key(channel: u8, key: u8) -> usize {
    usize::from(channel & 0x0f) * 128 + usize::from(key & 0x7f)
}

/// Parse MIDI bytes; `name` is used in messages.
///
/// How it stays fast: notes are stored once, at their note-on, in one vector; the open notes of
/// each (channel, key) are a list threaded through it (no allocation per key), and a note-off
/// fills in the end. A track's notes are then already in start order, except inside chords,
/// which the tokenizer orders by note-off: only those small groups are sorted, and tracks are
/// merged, instead of sorting every note.
pub fn parse_midi(bytes: &[u8], name: &str) -> Result<Performance, MusicError> {
    let file = name.to_string();
    let declared_tracks = check_chunks(bytes).map_err(|reason| MusicError::Truncated {
        file: file.clone(),
        reason,
    })?;
    let (header, tracks) = midly::parse(bytes).map_err(|e| MusicError::NotMidi {
        file: file.clone(),
        reason: e.to_string(),
    })?;

    let mut warnings = Vec::new();
    let mut tempos: Vec<(u64, u32)> = Vec::new();
    let mut pedals: Vec<(u64, u8, bool)> = Vec::new();
    let mut programs: Vec<(u8, u8)> = Vec::new();
    // A note takes at least 6 bytes (two events, running status); most files use about 10.
    let mut notes: Vec<TickNote> = Vec::with_capacity(bytes.len() / 10);
    let (mut unclosed, mut zero_length, mut drums) = (0usize, 0usize, 0usize);
    let mut track_count = 0usize;
    // Tracks holding notes after the first: only then do tracks need merging.
    let mut runs = 0usize;
    // Open note-ons per (channel, key), oldest first, as lists through `notes`; `touched` lists
    // the keys a track used, so resetting between tracks costs only what the track did.
    let mut head = [NONE; 16 * 128];
    let mut touched: Vec<u16> = Vec::new();

    // Like mido, read only the declared tracks: bytes after them are ignored.
    let limit = declared_tracks.map_or(usize::MAX, usize::from);
    for (track_index, track) in tracks.take(limit).enumerate() {
        track_count += 1;
        let raw = track
            .map_err(|e| MusicError::Truncated {
                file: file.clone(),
                reason: format!("track {}: {e}", track_index + 1),
            })?
            .unread();
        let track_start = notes.len();
        let mut closed = 0u32;
        // Where each open list ends, valid while its head is not NONE.
        let mut tail = [NONE; 16 * 128];
        let mut events = Events::new(raw);
        let mut tick = 0u64;
        while let Some(event) = events.next_event() {
            let (delta, event) = event.map_err(|why| MusicError::Truncated {
                file: file.clone(),
                reason: format!(
                    "track {}: unreadable event after tick {tick} ({why})",
                    track_index + 1
                ),
            })?;
            tick = tick.saturating_add(u64::from(delta));
            match event {
                Event::Tempo(0) => warnings.push(Warning::ZeroTempoIgnored { tick }),
                Event::Tempo(us) => tempos.push((tick, us)),
                Event::Program { channel, program } => programs.push((program, channel)),
                Event::Controller {
                    channel,
                    controller: 64,
                    value,
                } => pedals.push((tick, channel, value >= 64)),
                Event::NoteOn { channel, key, vel } if vel > 0 => {
                    let k = open_key(channel, key);
                    // Over 2^32 note-ons would take a file of tens of gigabytes.
                    let i = notes.len() as u32;
                    notes.push(TickNote {
                        start: tick,
                        end: tick,
                        closed_as: 0,
                        next: NONE,
                        pitch: key,
                        channel,
                        velocity: vel,
                        state: NoteState::Open,
                    });
                    if head[k] == NONE {
                        head[k] = i;
                        touched.push(k as u16);
                    } else {
                        notes[tail[k] as usize].next = i;
                    }
                    tail[k] = i;
                }
                Event::NoteOn { channel, key, .. } | Event::NoteOff { channel, key } => {
                    let k = open_key(channel, key);
                    // Ticks only grow, so the notes started at this tick end the list.
                    let mut i = head[k];
                    if i != NONE && notes[i as usize].start == tick {
                        // Nothing older to close: Aria forgets the key, including notes that
                        // started now.
                        while i != NONE {
                            let n = &mut notes[i as usize];
                            n.state = NoteState::Dropped;
                            zero_length += 1;
                            i = n.next;
                        }
                    } else {
                        // Close every note not started at this tick, oldest first; keep the rest.
                        while i != NONE && notes[i as usize].start != tick {
                            let n = &mut notes[i as usize];
                            n.end = tick;
                            n.closed_as = closed;
                            n.state = NoteState::Closed;
                            closed += 1;
                            i = n.next;
                        }
                    }
                    head[k] = i;
                }
                _ => {}
            }
        }
        for k in touched.drain(..) {
            head[usize::from(k)] = NONE;
        }
        // Keep this track's closed notes, off the drum channel; count the others.
        let mut kept = track_start;
        for i in track_start..notes.len() {
            let n = notes[i];
            match n.state {
                NoteState::Closed if n.channel == DRUM_CHANNEL => drums += 1,
                NoteState::Closed => {
                    notes[kept] = n;
                    kept += 1;
                }
                NoteState::Open => unclosed += 1,
                NoteState::Dropped => {}
            }
        }
        notes.truncate(kept);
        let track_notes = &mut notes[track_start..];
        order_chords(track_notes);
        if !track_notes.is_empty() && track_start > 0 {
            runs += 1;
        }
    }
    if let Some(declared) = declared_tracks.filter(|&d| usize::from(d) > track_count) {
        warnings.push(Warning::MissingTracks {
            declared,
            found: track_count,
        });
    }

    // Stable: in-chord order follows track order, then note-off order (spec §2.1). Each track is
    // in that order already, so this merges the tracks' runs.
    if runs > 0 {
        notes.sort_by_key(|n| n.start);
    }
    if notes.is_empty() {
        return Err(if drums > 0 {
            MusicError::DrumsOnly { file, count: drums }
        } else {
            MusicError::NoNotes {
                file,
                unclosed: unclosed + zero_length,
            }
        });
    }
    if drums > 0 {
        warnings.push(Warning::DrumsDropped { count: drums });
    }
    if unclosed > 0 {
        warnings.push(Warning::UnclosedNotes { count: unclosed });
    }
    if zero_length > 0 {
        warnings.push(Warning::ZeroLengthNotesDropped { count: zero_length });
    }
    let mut reported = Vec::new();
    for &(program, channel) in &programs {
        if program > 7 && channel != DRUM_CHANNEL && !reported.contains(&(program, channel)) {
            reported.push((program, channel));
            warnings.push(Warning::NonPianoProgram { program, channel });
        }
    }

    let (clock, time_division) =
        Clock::new(header.timing, tempos).map_err(|reason| MusicError::BadTimeDivision {
            file: file.clone(),
            reason,
        })?;
    apply_pedal(&mut notes, pedals);

    let first = notes[0].start;
    let mut starts = clock.cursor(first);
    let mut played = Vec::with_capacity(notes.len());
    for n in &notes {
        let start_ms = starts.ms_at(n.start);
        if start_ms >= MAX_START_MS {
            return Err(MusicError::TooLong { file, ms: start_ms });
        }
        played.push(PlayedNote {
            pitch: n.pitch,
            velocity: n.velocity,
            start_ms,
            dur_ms: starts
                .ms_in_span(n.start, n.end)
                .unwrap_or_else(|| clock.ms_between(n.start, n.end)),
        });
    }

    Ok(Performance {
        notes: played,
        tempo_changes: clock.tempo_changes(),
        warnings,
        ticks_per_quarter: match time_division {
            TimeDivision::TicksPerQuarter(tpq) => tpq,
            TimeDivision::Smpte { .. } => 0,
        },
        time_division,
        leading_silence_ms: clock.ms_between(0, first),
        source: file,
    })
}

/// Put one track's notes, which are in note-on order, into the tokenizer's order: a stable sort
/// by start of the notes in note-off order. Only notes sharing a start tick (chords) move.
fn order_chords(notes: &mut [TickNote]) {
    let mut rest = notes;
    while let Some(first) = rest.first() {
        let start = first.start;
        let len = rest
            .iter()
            .position(|n| n.start != start)
            .unwrap_or(rest.len());
        let (chord, after) = rest.split_at_mut(len);
        if len > 1 {
            chord.sort_unstable_by_key(|n| n.closed_as);
        }
        rest = after;
    }
}

/// Walk the chunk headers midly would silently forgive: a chunk longer than the rest of the file
/// means the file was cut. Returns the declared track count (`None` when the bytes do not start
/// with a plain header: RIFF-wrapped or not MIDI at all, which midly decides).
fn check_chunks(bytes: &[u8]) -> Result<Option<u16>, String> {
    if bytes.get(..4) != Some(b"MThd") {
        return Ok(None);
    }
    let mut rest = bytes;
    let mut declared = 0u16;
    let (mut chunk_index, mut tracks_seen) = (0usize, 0u16);
    while !rest.is_empty() && (chunk_index == 0 || tracks_seen < declared) {
        let Some((head, body)) = rest.split_at_checked(8) else {
            return Err(format!(
                "{} bytes of an incomplete chunk header at the end",
                rest.len()
            ));
        };
        let id = &head[..4];
        let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let Some((data, tail)) = body.split_at_checked(len) else {
            return Err(format!(
                "chunk {} ({}) declares {len} bytes but only {} remain",
                chunk_index + 1,
                String::from_utf8_lossy(id),
                body.len()
            ));
        };
        if chunk_index == 0 {
            declared = match data.get(2..4) {
                Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
                _ => return Err("header chunk shorter than 6 bytes".into()),
            };
        } else if id == b"MTrk" {
            tracks_seen += 1;
        }
        rest = tail;
        chunk_index += 1;
    }
    Ok(Some(declared))
}

/// Extend notes held by the sustain pedal of their channel (spec §2.2).
fn apply_pedal(notes: &mut [TickNote], mut pedals: Vec<(u64, u8, bool)>) {
    if !pedals.is_sorted_by_key(|p| p.0) {
        pedals.sort_by_key(|p| p.0); // stable: events of one tick keep their file order
    }
    let last_end = notes.last().map_or(0, |n| n.end);
    let mut intervals: [Vec<(u64, u64)>; 16] = Default::default();
    let mut down: [Option<u64>; 16] = [None; 16];
    for (tick, channel, on) in pedals {
        let ch = usize::from(channel & 0x0f);
        match (on, down[ch]) {
            (true, None) => down[ch] = Some(tick),
            (false, Some(start)) => {
                intervals[ch].push((start, tick));
                down[ch] = None;
            }
            _ => {}
        }
    }
    for (ch, start) in down.iter().enumerate() {
        if let Some(start) = *start {
            intervals[ch].push((start, last_end));
        }
    }
    // Intervals of a channel are disjoint and in order, so the last one starting before the end
    // is the only candidate: the same answer as Aria's first-match scan.
    let mut hints = [0usize; 16];
    for n in notes.iter_mut() {
        let ch = usize::from(n.channel & 0x0f);
        let ivs = &intervals[ch];
        let i = starting_before(ivs, n.end, hints[ch]);
        hints[ch] = i;
        if let Some(&(_, pedal_end)) = i.checked_sub(1).and_then(|i| ivs.get(i)) {
            if n.end < pedal_end {
                n.end = pedal_end;
            }
        }
    }
}

/// How many of `intervals` (sorted by start) start before `tick`, searched outward from `hint`:
/// notes in start order end near each other, so from the previous note's answer this is
/// usually a step or two. Far jumps fall back to a binary search.
fn starting_before(intervals: &[(u64, u64)], tick: u64, hint: usize) -> usize {
    let mut i = hint.min(intervals.len());
    for _ in 0..4 {
        if intervals.get(i).is_some_and(|iv| iv.0 < tick) {
            i += 1;
        } else if i > 0 && intervals[i - 1].0 >= tick {
            i -= 1;
        } else {
            return i;
        }
    }
    intervals.partition_point(|iv| iv.0 < tick)
}

/// Tempo entries a note may span before [`Clock::ms_between`] stops summing term by term.
const LONG_SPAN_ENTRIES: usize = 256;

fn prefix_secs(tpq: u16, tempos: &[(u64, u32)]) -> Vec<f64> {
    let mut acc = 0.0;
    let mut out = Vec::with_capacity(tempos.len());
    for (k, &(tick, _)) in tempos.iter().enumerate() {
        if let Some(&(prev_tick, us)) = k.checked_sub(1).and_then(|p| tempos.get(p)) {
            acc += (tick - prev_tick) as f64 * Clock::scale(tpq, us);
        }
        out.push(acc);
    }
    out
}

/// Ticks to milliseconds.
enum Clock {
    /// Tempo map sorted by tick, starting at tick 0, one entry per tick.
    Metrical {
        tpq: u16,
        tempos: Vec<(u64, u32)>,
        /// Seconds per tick of each tempo entry ([`Clock::scale`]), computed once.
        scales: Vec<f64>,
        /// Seconds from tick 0 to each tempo entry, for spans too long to sum term by term.
        prefix_secs: Vec<f64>,
    },
    /// `ms = ticks · num / den`.
    Smpte { num: f64, den: f64 },
}

impl Clock {
    fn new(timing: Timing, mut tempos: Vec<(u64, u32)>) -> Result<(Clock, TimeDivision), String> {
        match timing {
            Timing::Metrical(tpq) => {
                let tpq = tpq.as_int();
                if tpq == 0 {
                    return Err("0 ticks per quarter note".into());
                }
                tempos.sort_by_key(|t| t.0); // stable: the last event at a tick wins
                let mut map: Vec<(u64, u32)> = vec![(0, DEFAULT_US_PER_BEAT)];
                for (tick, us) in tempos {
                    match map.last_mut() {
                        Some(last) if last.0 == tick => last.1 = us,
                        _ => map.push((tick, us)),
                    }
                }
                Ok((
                    Clock::Metrical {
                        tpq,
                        scales: map.iter().map(|&(_, us)| Clock::scale(tpq, us)).collect(),
                        prefix_secs: prefix_secs(tpq, &map),
                        tempos: map,
                    },
                    TimeDivision::TicksPerQuarter(tpq),
                ))
            }
            Timing::Timecode(fps, ticks_per_frame) => {
                if ticks_per_frame == 0 {
                    return Err("SMPTE division with 0 ticks per frame".into());
                }
                let tpf = f64::from(ticks_per_frame);
                let (num, den) = match fps.as_int() {
                    29 => (1001.0, 30.0 * tpf), // 29.97 = 30000/1001 frames per second
                    f => (1000.0, f64::from(f) * tpf),
                };
                let division = TimeDivision::Smpte {
                    fps: fps.as_int(),
                    ticks_per_frame,
                };
                Ok((Clock::Smpte { num, den }, division))
            }
        }
    }

    /// Seconds per tick at a tempo, computed as mido does (`tempo * 1e-6 / tpq`) so that sums
    /// round like the original.
    fn scale(tpq: u16, us_per_beat: u32) -> f64 {
        f64::from(us_per_beat) * 1e-6 / f64::from(tpq)
    }

    /// `time_ms(a → b)`, `a <= b`: integrate over the tempo map left to right, then round.
    fn ms_between(&self, a: u64, b: u64) -> u64 {
        let b = b.max(a);
        match self {
            Clock::Smpte { num, den } => round_half_even((b - a) as f64 * num / den),
            Clock::Metrical {
                tpq,
                tempos,
                scales,
                prefix_secs,
            } => {
                let mut i = tempos.partition_point(|t| t.0 <= a).saturating_sub(1);
                if let Some(&scale) = scales.get(i) {
                    if tempos.get(i + 1).is_none_or(|next| next.0 >= b) {
                        // One tempo span: the loop below would add this single term to 0.0.
                        return round_half_even((b - a) as f64 * scale * 1e3);
                    }
                }
                let j = tempos.partition_point(|t| t.0 < b);
                if j.saturating_sub(i) > LONG_SPAN_ENTRIES {
                    // Pathological tempo maps only: a difference of prefix sums instead of the
                    // original's term-by-term sum (may differ in the last bit, never hangs).
                    let at = |t: u64| {
                        let k = tempos.partition_point(|e| e.0 <= t).saturating_sub(1);
                        let (tick, us) = tempos.get(k).copied().unwrap_or((0, DEFAULT_US_PER_BEAT));
                        prefix_secs.get(k).copied().unwrap_or(0.0)
                            + (t - tick) as f64 * Self::scale(*tpq, us)
                    };
                    return round_half_even((at(b) - at(a)) * 1e3);
                }
                let (mut cur, mut secs) = (a, 0.0f64);
                while let (Some(&scale), next) = (scales.get(i), tempos.get(i + 1)) {
                    match next {
                        Some(&(next_tick, _)) if next_tick < b => {
                            secs += (next_tick - cur) as f64 * scale;
                            cur = next_tick;
                            i += 1;
                        }
                        _ => {
                            secs += (b - cur) as f64 * scale;
                            break;
                        }
                    }
                }
                round_half_even(secs * 1e3)
            }
        }
    }

    /// A reader of `time_ms(origin → t)` for non-decreasing `t`, linear overall.
    fn cursor(&self, origin: u64) -> Cursor<'_> {
        let index = match self {
            Clock::Metrical { tempos, .. } => {
                tempos.partition_point(|t| t.0 <= origin).saturating_sub(1)
            }
            Clock::Smpte { .. } => 0,
        };
        Cursor {
            clock: self,
            origin,
            index,
            seg_start: origin,
            acc_secs: 0.0,
        }
    }

    fn tempo_changes(&self) -> Vec<TempoChange> {
        match self {
            Clock::Smpte { .. } => Vec::new(),
            Clock::Metrical { tempos, .. } => {
                let mut cursor = self.cursor(0);
                tempos
                    .iter()
                    .map(|&(tick, us_per_beat)| TempoChange {
                        tick,
                        ms: cursor.ms_at(tick),
                        us_per_beat,
                    })
                    .collect()
            }
        }
    }
}

/// Running sum for times from one origin. It adds the same terms in the same order as
/// [`Clock::ms_between`], so both give identical floats.
struct Cursor<'a> {
    clock: &'a Clock,
    origin: u64,
    index: usize,
    seg_start: u64,
    acc_secs: f64,
}

impl Cursor<'_> {
    fn ms_at(&mut self, t: u64) -> u64 {
        let t = t.max(self.seg_start);
        match self.clock {
            Clock::Smpte { .. } => self.clock.ms_between(self.origin, t),
            Clock::Metrical {
                tpq,
                tempos,
                scales,
                ..
            } => {
                while let (Some(&scale), Some(&(next_tick, _))) =
                    (scales.get(self.index), tempos.get(self.index + 1))
                {
                    if next_tick >= t {
                        break;
                    }
                    self.acc_secs += (next_tick - self.seg_start) as f64 * scale;
                    self.seg_start = next_tick;
                    self.index += 1;
                }
                let scale = scales
                    .get(self.index)
                    .copied()
                    .unwrap_or_else(|| Clock::scale(*tpq, DEFAULT_US_PER_BEAT));
                let secs = self.acc_secs + (t - self.seg_start) as f64 * scale;
                round_half_even(secs * 1e3)
            }
        }
    }

    /// `time_ms(a → b)` (as [`Clock::ms_between`]) when the tempo entry this cursor reached
    /// with `ms_at(a)` covers all of it; `None` when a tempo change lies inside. The common case
    /// of a note's duration, without searching the tempo map.
    fn ms_in_span(&self, a: u64, b: u64) -> Option<u64> {
        match self.clock {
            Clock::Smpte { .. } => Some(self.clock.ms_between(a, b)),
            Clock::Metrical { tempos, scales, .. } => {
                let b = b.max(a);
                let (&(tick, _), &scale) = (tempos.get(self.index)?, scales.get(self.index)?);
                let next_change = tempos.get(self.index + 1).map_or(u64::MAX, |next| next.0);
                // If the next change is exactly at `a` (= `b`), `ms_between` starts from it
                // instead, but the span is empty either way: 0 ms.
                (tick <= a && next_change >= b)
                    .then(|| round_half_even((b - a) as f64 * scale * 1e3))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vlq(mut n: u32) -> Vec<u8> {
        let mut out = vec![(n & 0x7f) as u8];
        n >>= 7;
        while n > 0 {
            out.push(0x80 | (n & 0x7f) as u8);
            n >>= 7;
        }
        out.reverse();
        out
    }

    /// One track from (delta, event bytes), with end-of-track appended.
    fn track(events: &[(u32, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (delta, data) in events {
            body.extend(vlq(*delta));
            body.extend_from_slice(data);
        }
        body.extend_from_slice(&[0, 0xff, 0x2f, 0]);
        let mut out = b"MTrk".to_vec();
        out.extend((body.len() as u32).to_be_bytes());
        out.extend(body);
        out
    }

    fn smf(division: [u8; 2], tracks: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"MThd\0\0\0\x06\0\x01".to_vec();
        out.extend((tracks.len() as u16).to_be_bytes());
        out.extend(division);
        for t in tracks {
            out.extend(t);
        }
        out
    }

    fn clock(tpq: u16, tempos: &[(u64, u32)]) -> Clock {
        Clock::new(Timing::Metrical(tpq.into()), tempos.to_vec())
            .unwrap()
            .0
    }

    #[test]
    fn ms_rounding_is_python_half_to_even() {
        // 2.5 ms per tick; Python: round(2.5) = 2, round(7.5) = 8, round(12.5) = 12.
        let c = clock(1, &[(0, 2500)]);
        assert_eq!(c.ms_between(0, 1), 2);
        assert_eq!(c.ms_between(0, 3), 8);
        assert_eq!(c.ms_between(10, 15), 12);
    }

    #[test]
    fn cursor_matches_direct_integration() {
        let c = clock(
            480,
            &[(0, 500_000), (960, 250_000), (1920, 1_000_000), (1921, 777)],
        );
        for origin in [0u64, 1, 480, 960, 1000, 1920, 5000] {
            let mut cursor = c.cursor(origin);
            for t in (origin..origin + 4000).step_by(7) {
                assert_eq!(cursor.ms_at(t), c.ms_between(origin, t), "{origin}->{t}");
                for end in [t, t + 1, t + 5, t + 500, t + 3000, 1920, 1921, 960] {
                    if let Some(ms) = cursor.ms_in_span(t, end) {
                        assert_eq!(ms, c.ms_between(t, end), "{t}->{end}");
                    }
                }
            }
        }
    }

    #[test]
    fn notes_spanning_huge_tempo_maps_are_fast_and_close() {
        let tempos: Vec<(u64, u32)> = (0..100_000u64)
            .map(|k| (k * 10, 400_000 + (k % 7) as u32))
            .collect();
        let c = clock(480, &tempos);
        let long = c.ms_between(5, 999_995); // prefix sums
        let mut cursor = c.cursor(5);
        assert!(long.abs_diff(cursor.ms_at(999_995)) <= 1);
        for a in [0u64, 12_345] {
            // just below the threshold: term by term
            assert_eq!(c.ms_between(a, a + 2000), c.cursor(a).ms_at(a + 2000));
        }
    }

    #[test]
    fn default_tempo_applies_before_the_first_tempo_event() {
        let c = clock(500, &[(1000, 1_000_000)]);
        assert_eq!(c.ms_between(0, 1000), 1000);
        assert_eq!(c.ms_between(1000, 1500), 1000);
        // The last of several events at one tick wins.
        let c = clock(500, &[(0, 1_000_000), (0, 250_000)]);
        assert_eq!(c.ms_between(0, 1000), 500);
    }

    #[test]
    fn smpte_29_97_is_exact() {
        // 29.97 fps x 10 ticks per frame = 299.7 ticks per second: 30,000 ticks are 100.1 s.
        let bytes = smf(
            [0x100u16.wrapping_sub(29) as u8, 10],
            &[track(&[(0, &[0x90, 60, 80]), (30_000, &[0x80, 60, 0])])],
        );
        let p = parse_midi(&bytes, "ntsc.mid").unwrap();
        assert_eq!(p.notes[0].dur_ms, 100_100);
        assert_eq!(
            p.time_division,
            TimeDivision::Smpte {
                fps: 29,
                ticks_per_frame: 10
            }
        );
        assert_eq!(p.ticks_per_quarter, 0);
    }

    #[test]
    fn zero_time_divisions_are_errors() {
        let notes = track(&[(0, &[0x90, 60, 80]), (10, &[0x80, 60, 0])]);
        let err = parse_midi(&smf([0, 0], std::slice::from_ref(&notes)), "z.mid").unwrap_err();
        assert!(err.to_string().contains("z.mid"), "{err}");
        assert!(err.to_string().contains("0 ticks per quarter"), "{err}");
        let err = parse_midi(&smf([0xe7, 0], &[notes]), "z.mid").unwrap_err();
        assert!(err.to_string().contains("0 ticks per frame"), "{err}");
    }

    #[test]
    fn only_unclosed_notes_is_no_notes() {
        let bytes = smf([1, 0xf4], &[track(&[(0, &[0x90, 60, 80])])]);
        let err = parse_midi(&bytes, "open.mid").unwrap_err();
        assert!(matches!(err, MusicError::NoNotes { unclosed: 1, .. }));
        assert!(err.to_string().contains("never released"), "{err}");
    }

    #[test]
    fn unreadable_event_inside_a_complete_chunk_is_an_error() {
        // A complete chunk whose last event is cut: a note-on with one data byte.
        let mut body = vec![0, 0x90, 60, 80, 10, 0x80, 60, 0, 0, 0x90];
        let mut t = b"MTrk".to_vec();
        t.extend((body.len() as u32).to_be_bytes());
        t.append(&mut body);
        let err = parse_midi(&smf([1, 0xf4], &[t]), "cut.mid").unwrap_err();
        assert!(matches!(err, MusicError::Truncated { .. }), "{err}");
        assert!(err.to_string().starts_with("cut.mid: "), "{err}");
    }

    #[test]
    fn missing_tracks_and_trailing_bytes() {
        let notes = track(&[(0, &[0x90, 60, 80]), (10, &[0x80, 60, 0])]);
        let mut bytes = smf([1, 0xf4], std::slice::from_ref(&notes));
        bytes[11] = 3; // declare 3 tracks, hold 1
        let p = parse_midi(&bytes, "m.mid").unwrap();
        assert_eq!(
            p.warnings,
            vec![Warning::MissingTracks {
                declared: 3,
                found: 1
            }]
        );
        // Bytes after the declared tracks are ignored, as mido does.
        let mut bytes = smf([1, 0xf4], &[notes]);
        bytes.extend_from_slice(b"\0\0\0garbage");
        assert_eq!(parse_midi(&bytes, "g.mid").unwrap().notes.len(), 1);
    }

    #[test]
    fn huge_deltas_neither_overflow_nor_hang() {
        // Maximal deltas at the slowest tempo with 1 tick per quarter: 16.7 s per tick.
        let max = 0x0fff_ffff;
        let events: Vec<(u32, &[u8])> = vec![
            (0, &[0xff, 0x51, 3, 0xff, 0xff, 0xff]),
            (0, &[0x90, 60, 80]),
            (max, &[0x80, 60, 0]),
            (max, &[0x90, 61, 80]),
            (max, &[0x80, 61, 0]),
        ];
        let p = parse_midi(&smf([0, 1], &[track(&events)]), "slow.mid").unwrap();
        assert_eq!(p.notes.len(), 2);
        assert!(p.notes[1].start_ms > p.notes[0].dur_ms);
    }

    #[test]
    fn start_too_late_for_a_window_index_is_an_error() {
        let max = 0x0fff_ffff;
        let mut events: Vec<(u32, &[u8])> = vec![
            (0, &[0xff, 0x51, 3, 0xff, 0xff, 0xff]),
            (0, &[0x90, 60, 80]),
            (1, &[0x80, 60, 0]),
        ];
        // 16.7 s per tick: 500 max deltas are about 2.2e15 ms, beyond u32 windows (2.1e13 ms).
        events.extend(std::iter::repeat_n((max, &[0xff, 0x01, 0][..]), 500));
        events.push((0, &[0x90, 61, 80]));
        events.push((1, &[0x80, 61, 0]));
        let err = parse_midi(&smf([0, 1], &[track(&events)]), "late.mid").unwrap_err();
        assert!(matches!(err, MusicError::TooLong { .. }), "{err}");
    }

    /// The pairing as first written (a stack per key, notes pushed at note-off, a stable sort by
    /// start, pedal by binary search): `(pitch, velocity, start, end)` in ticks, and the counts
    /// of drum, unclosed and zero-length notes.
    #[allow(clippy::type_complexity)]
    fn reference_pairing(
        tracks: &[Vec<(u32, [u8; 3])>],
    ) -> (Vec<(u8, u8, u64, u64)>, usize, usize, usize) {
        let (mut notes, mut pedals) = (Vec::new(), Vec::new());
        let (mut unclosed, mut zero) = (0, 0);
        for events in tracks {
            let mut open: Vec<Vec<(u64, u8)>> = vec![Vec::new(); 16 * 128];
            let mut tick = 0u64;
            for &(delta, [status, key, value]) in events {
                tick += u64::from(delta);
                let channel = status & 0x0f;
                let stack = &mut open[open_key(channel, key)];
                match status >> 4 {
                    0xB => pedals.push((tick, channel, value >= 64)),
                    0x9 if value > 0 => stack.push((tick, value)),
                    _ => {
                        let before = stack.len();
                        stack.retain(|&(start, velocity)| {
                            if start != tick {
                                notes.push((key, channel, velocity, start, tick));
                            }
                            start == tick
                        });
                        if stack.len() == before || stack.is_empty() {
                            zero += stack.len();
                            stack.clear();
                        }
                    }
                }
            }
            unclosed += open.iter().map(Vec::len).sum::<usize>();
        }
        let total = notes.len();
        notes.retain(|n| n.1 != DRUM_CHANNEL);
        let drums = total - notes.len();
        notes.sort_by_key(|n| n.3);
        pedals.sort_by_key(|p| p.0);
        let last_end = notes.last().map_or(0, |n| n.4);
        let mut intervals: Vec<Vec<(u64, u64)>> = vec![Vec::new(); 16];
        let mut down: [Option<u64>; 16] = [None; 16];
        for (tick, ch, on) in pedals {
            let ch = usize::from(ch);
            match (on, down[ch]) {
                (true, None) => down[ch] = Some(tick),
                (false, Some(start)) => {
                    intervals[ch].push((start, tick));
                    down[ch] = None;
                }
                _ => {}
            }
        }
        for (ch, start) in down.iter().enumerate() {
            if let Some(start) = *start {
                intervals[ch].push((start, last_end));
            }
        }
        let notes = notes
            .into_iter()
            .map(|(pitch, ch, velocity, start, mut end)| {
                let ivs = &intervals[usize::from(ch)];
                let i = ivs.partition_point(|iv| iv.0 < end);
                if let Some(&(_, pedal_end)) = i.checked_sub(1).and_then(|i| ivs.get(i)) {
                    end = end.max(pedal_end);
                }
                (pitch, velocity, start, end)
            })
            .collect();
        (notes, drums, unclosed, zero)
    }

    /// Short tracks of note-ons, note-offs (both kinds) and pedal on three channels (one of them
    /// drums) and three keys, with deltas of 0 to 2: chords, repeated keys, stacked and
    /// zero-length notes are all common.
    fn dense_tracks() -> impl proptest::strategy::Strategy<Value = Vec<Vec<(u32, [u8; 3])>>> {
        use proptest::prelude::*;
        let event = (
            0u32..3,
            prop_oneof![Just(0u8), Just(1), Just(9)],
            0u8..4,
            60u8..63,
            0u8..128,
        )
            .prop_map(|(delta, channel, kind, key, value)| {
                let status = [0x90, 0x90, 0x80, 0xB0][usize::from(kind)] | channel;
                let key = if kind == 3 { 64 } else { key };
                let value = if kind == 1 {
                    0
                } else {
                    value.max(u8::from(kind == 0))
                };
                (delta, [status, key, value])
            });
        proptest::collection::vec(proptest::collection::vec(event, 0..60), 1..4)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn pairing_matches_the_reference(tracks in dense_tracks()) {
            let (want, drums, unclosed, zero) = reference_pairing(&tracks);
            let chunks: Vec<Vec<u8>> = tracks
                .iter()
                .map(|events| {
                    let bytes: Vec<(u32, &[u8])> =
                        events.iter().map(|(d, e)| (*d, &e[..])).collect();
                    track(&bytes)
                })
                .collect();
            // 500 ticks per quarter at the default tempo: one tick is one millisecond.
            let got = parse_midi(&smf([1, 0xf4], &chunks), "dense.mid");
            let Ok(p) = got else {
                proptest::prop_assert!(want.is_empty());
                return Ok(());
            };
            let first = want[0].2;
            let want_played: Vec<PlayedNote> = want
                .iter()
                .map(|&(pitch, velocity, start, end)| PlayedNote {
                    pitch,
                    velocity,
                    start_ms: start - first,
                    dur_ms: end - start,
                })
                .collect();
            proptest::prop_assert_eq!(p.notes, want_played);
            let count = |w: &Warning| match *w {
                Warning::DrumsDropped { count } => Some(("drums", count)),
                Warning::UnclosedNotes { count } => Some(("unclosed", count)),
                Warning::ZeroLengthNotesDropped { count } => Some(("zero", count)),
                _ => None,
            };
            let counts: Vec<_> = p.warnings.iter().filter_map(count).collect();
            let want_counts: Vec<_> = [("drums", drums), ("unclosed", unclosed), ("zero", zero)]
                .into_iter()
                .filter(|c| c.1 > 0)
                .collect();
            proptest::prop_assert_eq!(counts, want_counts);
        }
    }

    #[test]
    fn notes_of_the_same_key_on_other_channels_are_separate() {
        let bytes = smf(
            [1, 0xf4],
            &[track(&[
                (0, &[0x90, 60, 80]),
                (0, &[0x91, 60, 70]),
                (100, &[0x81, 60, 0]),
                (100, &[0x80, 60, 0]),
            ])],
        );
        let p = parse_midi(&bytes, "ch.mid").unwrap();
        // Note-off order: channel 1 closes first.
        let got: Vec<_> = p.notes.iter().map(|n| (n.velocity, n.dur_ms)).collect();
        assert_eq!(got, vec![(70, 100), (80, 200)]);
    }
}
