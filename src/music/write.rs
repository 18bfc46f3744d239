//! Writing pieces as MIDI the way the original detokenizer does (spec §10, "MIDI writing").
//!
//! Type 0, 500 ticks per quarter at 500,000 µs/beat, so one tick is one millisecond and the
//! file's timing is the piece's timing exactly. Channel 0, program 0, no pedal.
//!
//! One deliberate difference: where a note is still held when its key is struck again, Aria's
//! writer drops the earlier note's off (so reading the file back lengthens it); we end it at the
//! restrike, so write -> read -> tokenize reaches a fixed point after the first write.
//!
//! Notes the format cannot carry are left out rather than corrupting others: velocity 0 (a
//! note-on of velocity 0 *is* a note-off and would cut a sounding note of that pitch) and pitches
//! above 127.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use midly::num::{u15, u24, u28, u4, u7};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};

use super::error::MusicError;
use super::segment::Piece;

/// Ticks per quarter note: with the default tempo, 1 tick = 1 ms.
pub const TICKS_PER_QUARTER: u16 = 500;
/// 120 bpm.
pub const US_PER_BEAT: u32 = 500_000;

/// Sort key of messages at the same tick, as the original's `(time, velocity)` with non-note
/// messages at 1000: note-offs (velocity 0) first, then note-ons by velocity, then the rest.
const NON_NOTE_KEY: u16 = 1000;

/// Encode a piece as a Standard MIDI File.
pub fn piece_to_smf(piece: &Piece) -> Vec<u8> {
    let played = piece.to_played();
    let channel = u4::new(0);

    // (tick, sort key, event): meta, program, note-ons, then note-offs, each in piece order.
    // The sort below is stable, so this order breaks the remaining ties.
    let mut messages: Vec<(u64, u16, TrackEventKind<'static>)> = vec![
        (
            0,
            NON_NOTE_KEY,
            TrackEventKind::Meta(MetaMessage::Tempo(u24::new(US_PER_BEAT))),
        ),
        (
            0,
            NON_NOTE_KEY,
            TrackEventKind::Midi {
                channel,
                message: MidiMessage::ProgramChange {
                    program: u7::new(0),
                },
            },
        ),
    ];
    let sounding: Vec<_> = played
        .iter()
        .filter_map(|n| Some((n, u7::try_from(n.pitch)?)))
        .filter(|(n, _)| n.velocity > 0)
        .collect();
    // Onsets per pitch, to end a held note where the same key is struck again.
    let mut onsets: Vec<Vec<u64>> = vec![Vec::new(); 128];
    for (n, _) in &sounding {
        onsets[n.pitch as usize].push(n.start_ms);
    }
    for list in &mut onsets {
        list.sort_unstable();
    }
    for (n, key) in &sounding {
        let vel = n.velocity.min(127);
        messages.push((
            n.start_ms,
            u16::from(vel),
            TrackEventKind::Midi {
                channel,
                message: MidiMessage::NoteOn {
                    key: *key,
                    vel: u7::new(vel),
                },
            },
        ));
    }
    // Offs in the piece's note order (the reader orders a chord by note-off order, so this keeps
    // write -> read -> tokenize stable). A note still held when its key is struck again ends at
    // that onset (offs sort before ons): a piano cannot restrike a held key, and the reader would
    // otherwise pair the off with the wrong note. Aria's writer instead drops such offs, which
    // lengthens notes on every round trip.
    for (n, key) in &sounding {
        let list = &onsets[n.pitch as usize];
        let next_strike = list
            .get(list.partition_point(|&s| s <= n.start_ms))
            .copied()
            .unwrap_or(u64::MAX);
        let end = n.start_ms.saturating_add(n.dur_ms).min(next_strike);
        messages.push((
            end,
            0,
            TrackEventKind::Midi {
                channel,
                message: MidiMessage::NoteOn {
                    key: *key,
                    vel: u7::new(0),
                },
            },
        ));
    }
    messages.sort_by_key(|m| (m.0, m.1));

    let max_delta = u64::from(u28::max_value().as_int());
    let mut track = Vec::with_capacity(messages.len() + 1);
    let mut prev = 0u64;
    for (tick, _, kind) in messages {
        let mut delta = tick - prev;
        // A gap longer than a delta can hold (about 74 hours) is bridged with tempo events that
        // change nothing.
        while delta > max_delta {
            track.push(TrackEvent {
                delta: u28::max_value(),
                kind: TrackEventKind::Meta(MetaMessage::Tempo(u24::new(US_PER_BEAT))),
            });
            delta -= max_delta;
        }
        track.push(TrackEvent {
            delta: u28::new(delta as u32),
            kind,
        });
        prev = tick;
    }
    track.push(TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
    });

    let smf = Smf {
        header: Header::new(
            Format::SingleTrack,
            Timing::Metrical(u15::new(TICKS_PER_QUARTER)),
        ),
        tracks: vec![track],
    };
    let mut bytes = Vec::new();
    // Writing to memory only fails past the SMF size limits (a track of 4 GB).
    if smf.write_std(&mut bytes).is_err() {
        bytes.clear();
    }
    bytes
}

/// Write a piece to a MIDI file, atomically: a crash never leaves a half-written file behind.
pub fn write_midi(piece: &Piece, path: &Path) -> Result<(), MusicError> {
    let bytes = piece_to_smf(piece);
    write_atomic(path, &bytes).map_err(|io| MusicError::Write {
        path: path.to_path_buf(),
        io,
    })
}

/// Write to a temporary file next to `path`, then rename it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output.mid".into());
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::{Note, Segment};

    fn events(piece: &Piece) -> Vec<(u64, TrackEventKind<'static>)> {
        let bytes = piece_to_smf(piece);
        let smf = Smf::parse(&bytes).unwrap();
        let mut tick = 0u64;
        smf.tracks[0]
            .iter()
            .map(|e| {
                tick += u64::from(e.delta.as_int());
                let kind = match e.kind {
                    TrackEventKind::Midi { channel, message } => {
                        TrackEventKind::Midi { channel, message }
                    }
                    TrackEventKind::Meta(MetaMessage::Tempo(t)) => {
                        TrackEventKind::Meta(MetaMessage::Tempo(t))
                    }
                    _ => TrackEventKind::Meta(MetaMessage::EndOfTrack),
                };
                (tick, kind)
            })
            .collect()
    }

    #[test]
    fn gaps_beyond_one_delta_are_bridged_with_neutral_tempo_events() {
        let window = 200_000u32; // 1e9 ms: three maximal deltas and a remainder
        let piece = Piece {
            segments: vec![
                Segment {
                    window: 0,
                    notes: vec![Note::new(60, 90, 0, 10)],
                },
                Segment {
                    window,
                    notes: vec![Note::new(62, 90, 0, 10)],
                },
            ],
        };
        let ev = events(&piece);
        let fillers = ev
            .iter()
            .filter(|(t, k)| *t > 0 && matches!(k, TrackEventKind::Meta(MetaMessage::Tempo(_))))
            .count();
        assert_eq!(fillers, 3);
        let on = ev.iter().find(|(_, k)| {
            matches!(k, TrackEventKind::Midi { message: MidiMessage::NoteOn { key, .. }, .. } if key.as_int() == 62)
        });
        assert_eq!(on.map(|e| e.0), Some(u64::from(window) * 5000));
    }

    #[test]
    fn a_held_note_ends_where_its_key_is_struck_again() {
        let piece = Piece {
            segments: vec![Segment {
                window: 0,
                notes: vec![Note::new(60, 90, 0, 1000), Note::new(60, 60, 500, 1000)],
            }],
        };
        let offs: Vec<u64> = events(&piece)
            .iter()
            .filter(|(_, k)| {
                matches!(k, TrackEventKind::Midi { message: MidiMessage::NoteOn { vel, .. }, .. } if vel.as_int() == 0)
            })
            .map(|e| e.0)
            .collect();
        assert_eq!(offs, vec![500, 1500]);
    }
}
