//! Capture (audio thread): live notes into fixed-size segment buffers keyed to the sample clock.
//!
//! A note belongs to the segment its onset falls in. A segment is handed on (to the worker)
//! once its window and a short grace period have passed, so a chord held over the bar line keeps
//! its real length; a key still down then is cut at the segment length, the model's longest note.
//! The buffers stay in a ring after that: playback reads the original notes from there, and a
//! late note-off still completes them. Nothing here allocates, locks or blocks.

use nice_plug::prelude::Transport;

use super::notes::{NoteBuf, SampleNote, OPEN};

/// Segment length: the model's T-segment.
pub const SEGMENT_SECONDS: f32 = 5.0;
/// How long after a segment's window held notes may still end and count in full.
pub const GRACE_SECONDS: f32 = 0.25;

/// Segments kept: the longest delay plus the one being filled, with room to spare.
pub const RING: usize = 12;

#[derive(Clone, Copy, Debug)]
struct Slot {
    index: i64,
    notes: NoteBuf,
}

#[derive(Clone, Copy, Debug)]
struct OpenNote {
    segment: i64,
    pos: u16,
    start: i64,
}

/// The capture state machine. Times are absolute samples on the plugin's clock.
pub struct Capture {
    seg_len: i64,
    grace: i64,
    ring: Box<[Slot; RING]>,
    open: [Option<OpenNote>; 128],
    /// First segment since the last reset; earlier ones never existed.
    first: Option<i64>,
    /// The next segment to hand on.
    next_final: i64,
    /// Newest segment whose buffer is initialised.
    newest: i64,
    dropped: u64,
}

impl Capture {
    /// `seg_len` and `grace` in samples (`seg_len` at least 1).
    pub fn new(seg_len: u32, grace: u32) -> Self {
        Self {
            seg_len: i64::from(seg_len.max(1)),
            grace: i64::from(grace),
            ring: Box::new(
                [Slot {
                    index: i64::MIN,
                    notes: NoteBuf::EMPTY,
                }; RING],
            ),
            open: [None; 128],
            first: None,
            next_final: 0,
            newest: i64::MIN,
            dropped: 0,
        }
    }

    pub fn seg_len(&self) -> u32 {
        self.seg_len as u32
    }

    /// Changes the grace period (it must stay under one segment for delay 1 to work).
    pub fn set_grace(&mut self, grace: u32) {
        self.grace = i64::from(grace);
    }

    /// A new segment length (sync to bars at a new tempo); forgets everything, as [`reset`].
    ///
    /// [`reset`]: Self::reset
    pub fn set_seg_len(&mut self, seg_len: u32) {
        self.seg_len = i64::from(seg_len.max(1));
        self.reset();
    }

    /// Forgets everything (seek, stop, deactivate): open notes are dropped, not finished.
    pub fn reset(&mut self) {
        for slot in self.ring.iter_mut() {
            slot.index = i64::MIN;
            slot.notes.clear();
        }
        self.open = [None; 128];
        self.first = None;
        self.newest = i64::MIN;
        self.next_final = 0;
    }

    /// Notes not stored because a segment was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The first segment captured since the last reset.
    pub fn first(&self) -> Option<i64> {
        self.first
    }

    pub fn segment_of(&self, t: i64) -> i64 {
        t.div_euclid(self.seg_len)
    }

    fn slot_mut(&mut self, index: i64) -> Option<&mut Slot> {
        let slot = &mut self.ring[index.rem_euclid(RING as i64) as usize];
        (slot.index == index).then_some(slot)
    }

    /// The original notes of segment `index`, while it is still in the ring.
    pub fn original(&self, index: i64) -> Option<&NoteBuf> {
        let slot = &self.ring[index.rem_euclid(RING as i64) as usize];
        (slot.index == index).then_some(&slot.notes)
    }

    /// Moves the clock to `t`: opens the segments reached and hands on (via `out`) each segment
    /// whose window and grace ended at or before `t`, with keys still down cut at that moment.
    pub fn advance(&mut self, t: i64, out: &mut impl FnMut(i64, &NoteBuf)) {
        let now = self.segment_of(t);
        if self.first.is_none() {
            self.first = Some(now);
            self.next_final = now;
        }
        if self.newest == i64::MIN || now > self.newest {
            let from = if self.newest == i64::MIN {
                now
            } else {
                (self.newest + 1).max(now - RING as i64 + 1)
            };
            for index in from..=now {
                let slot = &mut self.ring[index.rem_euclid(RING as i64) as usize];
                slot.index = index;
                slot.notes.clear();
            }
            self.newest = now;
        }
        // After a long silence of calls only the segments still in the ring are handed on.
        self.next_final = self.next_final.max(now - RING as i64 + 1);
        loop {
            let k = self.next_final;
            let end = (k + 1) * self.seg_len + self.grace;
            if end > t {
                break;
            }
            let start = k * self.seg_len;
            let mut copy = self.original(k).copied().unwrap_or(NoteBuf::EMPTY);
            for n in copy.as_mut_slice() {
                if n.dur == OPEN {
                    let held = end - (start + i64::from(n.onset));
                    n.dur = held.clamp(1, self.seg_len) as u32;
                }
            }
            out(k, &copy);
            self.next_final = k + 1;
        }
    }

    /// A key goes down at `t` (call [`advance`](Self::advance) to `t` first).
    pub fn note_on(&mut self, t: i64, pitch: u8, velocity: u8) {
        let pitch = pitch.min(127);
        if self.open[usize::from(pitch)].is_some() {
            self.note_off(t, pitch);
        }
        let segment = self.segment_of(t);
        let onset = (t - segment * self.seg_len) as u32;
        let Some(slot) = self.slot_mut(segment) else {
            return;
        };
        let note = SampleNote {
            pitch,
            velocity: velocity.clamp(1, 127),
            onset,
            dur: OPEN,
        };
        match slot.notes.push(note) {
            Some(pos) => {
                self.open[usize::from(pitch)] = Some(OpenNote {
                    segment,
                    pos: pos as u16,
                    start: t,
                })
            }
            None => self.dropped += 1,
        }
    }

    /// A key comes up at `t`: its note gets its length, capped at one segment.
    pub fn note_off(&mut self, t: i64, pitch: u8) {
        let Some(open) = self.open.get_mut(usize::from(pitch)).and_then(Option::take) else {
            return;
        };
        let seg_len = self.seg_len;
        if let Some(slot) = self.slot_mut(open.segment) {
            if let Some(n) = slot.notes.as_mut_slice().get_mut(usize::from(open.pos)) {
                n.dur = (t - open.start).clamp(1, seg_len) as u32;
            }
        }
    }
}

/// One bar in seconds at the host's tempo and metre, when the host tells both.
pub fn bar_seconds(transport: &Transport) -> Option<f64> {
    let tempo = transport.tempo.filter(|t| t.is_finite() && *t > 0.0)?;
    let num = transport.time_sig_numerator.filter(|n| *n > 0)?;
    let den = transport.time_sig_denominator.filter(|d| *d > 0)?;
    Some(f64::from(num) * 4.0 / f64::from(den) * 60.0 / tempo)
}

/// Segment length in samples: 5 s, or with `bar` (seconds) the whole number of bars closest to
/// 5 s (at least one, at most 4 × 5 s so a very slow tempo cannot starve the worker forever).
pub fn segment_samples(sample_rate: f32, bar: Option<f64>) -> u32 {
    let sr = f64::from(sample_rate);
    let seconds = match bar {
        Some(bar) if bar > 0.0 => {
            let target = f64::from(SEGMENT_SECONDS);
            let fewer = (target / bar).floor().max(1.0);
            // On a tie the shorter segment wins: less waiting for the answer.
            let bars = if ((fewer + 1.0) * bar - target).abs() < (fewer * bar - target).abs() {
                fewer + 1.0
            } else {
                fewer
            };
            (bars * bar).min(4.0 * target)
        }
        _ => f64::from(SEGMENT_SECONDS),
    };
    (seconds * sr).round().max(1.0) as u32
}

/// The grace period in samples; none at delay 1, where the original plays right after its window.
pub fn grace(sample_rate: f32, delay: u32) -> u32 {
    if delay <= 1 {
        0
    } else {
        (GRACE_SECONDS * sample_rate).round() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(c: &mut Capture, t: i64) -> Vec<(i64, Vec<SampleNote>)> {
        let mut got = Vec::new();
        c.advance(t, &mut |k, buf| got.push((k, buf.as_slice().to_vec())));
        got
    }

    #[test]
    fn notes_land_in_their_segment_with_exact_times() {
        let mut c = Capture::new(1000, 100);
        assert!(collect(&mut c, 0).is_empty());
        c.note_on(10, 60, 100);
        collect(&mut c, 250);
        c.note_off(250, 60);
        collect(&mut c, 990);
        c.note_on(990, 64, 80);
        // The window ends at 1000 but the grace runs to 1100.
        assert!(collect(&mut c, 1099).is_empty());
        c.note_off(1050, 64);
        let got = collect(&mut c, 1100);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 0);
        assert_eq!(
            got[0].1,
            vec![
                SampleNote {
                    pitch: 60,
                    velocity: 100,
                    onset: 10,
                    dur: 240
                },
                SampleNote {
                    pitch: 64,
                    velocity: 80,
                    onset: 990,
                    dur: 60
                },
            ]
        );
    }

    #[test]
    fn held_keys_are_cut_at_the_grace_end_and_completed_later() {
        let mut c = Capture::new(1000, 100);
        collect(&mut c, 500);
        c.note_on(500, 60, 90);
        let got = collect(&mut c, 1100);
        assert_eq!(got[0].1[0].dur, 600);
        c.note_off(1200, 60);
        assert_eq!(c.original(0).unwrap().as_slice()[0].dur, 700);
        // Longer than a segment: capped.
        c.note_on(1300, 61, 90);
        collect(&mut c, 3000);
        c.note_off(3000, 61);
        assert_eq!(c.original(1).unwrap().as_slice()[0].dur, 1000);
    }

    #[test]
    fn every_segment_is_handed_on_once_even_when_empty() {
        let mut c = Capture::new(1000, 0);
        collect(&mut c, 2500);
        let got = collect(&mut c, 6000);
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            vec![2, 3, 4, 5]
        );
        assert!(got.iter().all(|g| g.1.is_empty()));
        assert_eq!(c.first(), Some(2));
    }

    #[test]
    fn a_full_segment_counts_drops_and_reset_forgets() {
        let mut c = Capture::new(100_000, 0);
        collect(&mut c, 0);
        for i in 0..300 {
            c.note_on(i, (i % 100) as u8, 64);
            c.note_off(i, (i % 100) as u8);
        }
        assert_eq!(
            c.original(0).unwrap().len(),
            crate::plugin::notes::MAX_NOTES
        );
        assert_eq!(c.dropped(), 300 - crate::plugin::notes::MAX_NOTES as u64);
        c.reset();
        assert!(c.original(0).is_none());
        assert_eq!(c.first(), None);
        // A note-off for a key pressed before the reset is ignored.
        c.note_off(10, 5);
    }

    #[test]
    fn retriggered_key_closes_the_previous_note() {
        let mut c = Capture::new(1000, 0);
        collect(&mut c, 0);
        c.note_on(0, 60, 90);
        c.note_on(100, 60, 90);
        c.note_off(150, 60);
        let notes = c.original(0).unwrap().as_slice().to_vec();
        assert_eq!(notes[0].dur, 100);
        assert_eq!(notes[1].dur, 50);
    }

    #[test]
    fn synced_segments_are_the_whole_bars_closest_to_five_seconds() {
        let sr = 48_000.0;
        let bar = |bpm: f64, num: f64| num * 60.0 / bpm;
        assert_eq!(segment_samples(sr, None), 240_000);
        // 100 bpm 4/4: 2.4 s bars, two of them.
        assert_eq!(segment_samples(sr, Some(bar(100.0, 4.0))), 230_400);
        // 120 bpm 4/4: 2 s bars; 4 s and 6 s are as close, the shorter wins.
        assert_eq!(segment_samples(sr, Some(bar(120.0, 4.0))), 192_000);
        // 140 bpm 3/4: 1.2857 s bars, four of them (5.14 s).
        assert_eq!(
            segment_samples(sr, Some(bar(140.0, 3.0))),
            (4.0 * 3.0 * 60.0 / 140.0 * 48_000.0_f64).round() as u32
        );
        // 40 bpm 4/4: one 6 s bar; 8 bpm: one 30 s bar, capped at 20 s.
        assert_eq!(segment_samples(sr, Some(bar(40.0, 4.0))), 288_000);
        assert_eq!(segment_samples(sr, Some(bar(8.0, 4.0))), 960_000);
    }
}
