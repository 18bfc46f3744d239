//! Playback (audio thread): segment `s` sounds again during segment `s + delay`, refined when
//! the worker's answer is in by then, the original otherwise (counted late).
//!
//! A table of sounding keys makes sure every note-on gets its note-off: at its own end, before
//! the same key starts again, and on [`all_off`](Playback::all_off) (stop, seek, bypass, mode or
//! delay change). Nothing here allocates, locks or blocks.

use super::capture::{Capture, RING};
use super::notes::{NoteBuf, OPEN};

/// A note event to send, `offset` samples into the current block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayEvent {
    On {
        offset: u32,
        pitch: u8,
        velocity: u8,
    },
    Off {
        offset: u32,
        pitch: u8,
    },
}

/// What the worker answered for a segment. Kept inline (about 3 KB), never boxed: it lives in
/// preallocated channel and ring slots, and the audio thread must not touch the heap.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Answer {
    /// Play the original notes (not refined: rate draw, refine off, no model, or an error).
    Original,
    /// Play these notes instead.
    Refined(NoteBuf),
}

#[derive(Clone, Copy, Debug)]
struct AnswerSlot {
    index: i64,
    answer: Answer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Original,
    Refined,
}

#[derive(Clone, Copy, Debug)]
struct Current {
    /// The source segment now playing (the output segment minus the delay).
    index: i64,
    source: Source,
    cursor: usize,
}

/// The playback state machine. Times are absolute samples on the plugin's clock.
pub struct Playback {
    seg_len: i64,
    delay: i64,
    answers: Box<[AnswerSlot; RING]>,
    current: Option<Current>,
    /// Sample at which each sounding key is released.
    sounding: [Option<i64>; 128],
    late: u64,
    refined_played: u64,
}

impl Playback {
    /// `seg_len` in samples; `delay` in segments, 1 to `RING - 2`.
    pub fn new(seg_len: u32, delay: u32) -> Self {
        Self {
            seg_len: i64::from(seg_len.max(1)),
            delay: i64::from(delay.clamp(1, RING as u32 - 2)),
            answers: Box::new(
                [AnswerSlot {
                    index: i64::MIN,
                    answer: Answer::Original,
                }; RING],
            ),
            current: None,
            sounding: [None; 128],
            late: 0,
            refined_played: 0,
        }
    }

    pub fn delay(&self) -> u32 {
        self.delay as u32
    }

    /// Segments that played the original because the answer was not in time.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Segments that played refined notes.
    pub fn refined_played(&self) -> u64 {
        self.refined_played
    }

    /// Keys now sounding.
    pub fn sounding(&self) -> usize {
        self.sounding.iter().flatten().count()
    }

    /// Keeps the worker's answer for segment `index` until its turn comes.
    pub fn receive(&mut self, index: i64, answer: Answer) {
        self.answers[index.rem_euclid(RING as i64) as usize] = AnswerSlot { index, answer };
    }

    /// Whether an answer for `index` is here.
    pub fn has_answer(&self, index: i64) -> bool {
        self.answers[index.rem_euclid(RING as i64) as usize].index == index
    }

    /// The source segments whose turn starts in `[t0, t1)` (offline rendering waits for them).
    pub fn turns_in(&self, t0: i64, t1: i64) -> std::ops::RangeInclusive<i64> {
        let first = t0.div_euclid(self.seg_len);
        let starts_now = self.current.is_none_or(|c| c.index + self.delay != first);
        let last = (t1 - 1).div_euclid(self.seg_len);
        let from = if starts_now { first } else { first + 1 };
        (from - self.delay)..=(last - self.delay)
    }

    /// Releases every sounding key at `offset` and forgets what was playing; answers already
    /// received for later segments stay. With `clear_answers` they go too (seek, delay change).
    pub fn all_off(&mut self, offset: u32, clear_answers: bool, emit: &mut impl FnMut(PlayEvent)) {
        for (pitch, s) in self.sounding.iter_mut().enumerate() {
            if s.take().is_some() {
                emit(PlayEvent::Off {
                    offset,
                    pitch: pitch as u8,
                });
            }
        }
        self.current = None;
        if clear_answers {
            for a in self.answers.iter_mut() {
                a.index = i64::MIN;
            }
        }
    }

    /// Changes the segment length; call [`all_off`](Self::all_off) with answers cleared first.
    pub fn set_seg_len(&mut self, seg_len: u32) {
        self.seg_len = i64::from(seg_len.max(1));
        self.current = None;
    }

    /// Changes the delay; call [`all_off`](Self::all_off) with it.
    pub fn set_delay(&mut self, delay: u32) {
        self.delay = i64::from(delay.clamp(1, RING as u32 - 2));
        self.current = None;
    }

    /// Plays `[t0, t1)` (the block starts at `t0`). `expect_refined` says whether a missing answer
    /// counts as late (refining on and a model loaded).
    pub fn render(
        &mut self,
        t0: i64,
        from: i64,
        to: i64,
        capture: &Capture,
        expect_refined: bool,
        emit: &mut impl FnMut(PlayEvent),
    ) {
        let mut a = from;
        while a < to {
            let k = a.div_euclid(self.seg_len);
            let b = to.min((k + 1) * self.seg_len);
            self.begin_turn(k, a, capture, expect_refined);
            self.play_range(t0, a, b, capture, emit);
            a = b;
        }
    }

    /// Picks the source for output segment `k` when it starts (or when playing resumes in it).
    fn begin_turn(&mut self, k: i64, a: i64, capture: &Capture, expect_refined: bool) {
        let index = k - self.delay;
        if self.current.is_some_and(|c| c.index == index) {
            return;
        }
        let slot = &self.answers[index.rem_euclid(RING as i64) as usize];
        let source = match (slot.index == index, &slot.answer) {
            (true, Answer::Refined(_)) => {
                self.refined_played += 1;
                Source::Refined
            }
            (true, Answer::Original) => Source::Original,
            (false, _) => {
                let captured = capture.first().is_some_and(|f| index >= f);
                if expect_refined && captured {
                    self.late += 1;
                }
                Source::Original
            }
        };
        // Resuming mid-segment: notes whose onset has passed are skipped, not played late.
        let passed = (a - k * self.seg_len) as u32;
        let cursor = self.notes(index, source, capture).map_or(0, |n| {
            n.as_slice().iter().take_while(|x| x.onset < passed).count()
        });
        self.current = Some(Current {
            index,
            source,
            cursor,
        });
    }

    fn notes<'a>(
        &'a self,
        index: i64,
        source: Source,
        capture: &'a Capture,
    ) -> Option<&'a NoteBuf> {
        match source {
            Source::Original => capture.original(index),
            Source::Refined => {
                let slot = &self.answers[index.rem_euclid(RING as i64) as usize];
                match (&slot.answer, slot.index == index) {
                    (Answer::Refined(n), true) => Some(n),
                    _ => capture.original(index),
                }
            }
        }
    }

    /// Emits, in time order, the releases and the onsets of the current turn that fall in
    /// `[a, b)`, all within one output segment. Releases go first at equal times.
    fn play_range(
        &mut self,
        t0: i64,
        a: i64,
        b: i64,
        capture: &Capture,
        emit: &mut impl FnMut(PlayEvent),
    ) {
        let Some(cur) = self.current else { return };
        let base = (cur.index + self.delay) * self.seg_len;
        let mut cursor = cur.cursor;
        loop {
            // The original is read afresh each time: it may still be growing (delay 1).
            let next_on = self
                .notes(cur.index, cur.source, capture)
                .and_then(|n| n.get(cursor).copied())
                .map(|n| (base + i64::from(n.onset), n))
                .filter(|(t, _)| *t < b);
            let next_off = self
                .sounding
                .iter()
                .enumerate()
                .filter_map(|(p, s)| s.map(|t| (t, p)))
                .min()
                .filter(|(t, _)| *t < b);
            match (next_on, next_off) {
                (_, Some((toff, p))) if next_on.is_none_or(|(ton, _)| toff <= ton) => {
                    self.sounding[p] = None;
                    emit(PlayEvent::Off {
                        offset: (toff.max(a) - t0) as u32,
                        pitch: p as u8,
                    });
                }
                (Some((ton, n)), _) => {
                    cursor += 1;
                    let ton = ton.max(a);
                    let offset = (ton - t0) as u32;
                    let p = usize::from(n.pitch.min(127));
                    if self.sounding[p].take().is_some() {
                        emit(PlayEvent::Off {
                            offset,
                            pitch: n.pitch,
                        });
                    }
                    let dur = if n.dur == OPEN {
                        self.seg_len
                    } else {
                        i64::from(n.dur)
                    };
                    self.sounding[p] = Some(ton + dur.clamp(1, self.seg_len));
                    emit(PlayEvent::On {
                        offset,
                        pitch: n.pitch,
                        velocity: n.velocity.max(1),
                    });
                }
                _ => break,
            }
        }
        if let Some(c) = self.current.as_mut() {
            c.cursor = cursor;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::notes::SampleNote;

    const L: i64 = 1000;

    /// Runs capture and playback together over `[0, end)` in blocks of `block`, feeding
    /// `input` (time, pitch, on) and answering each handed-on segment with `answer`.
    fn run(
        input: &[(i64, u8, bool)],
        end: i64,
        block: i64,
        delay: u32,
        answer: impl Fn(i64, &NoteBuf) -> Option<Answer>,
    ) -> (Vec<(i64, PlayEvent)>, Playback) {
        let mut cap = Capture::new(L as u32, 0);
        let mut play = Playback::new(L as u32, delay);
        let mut out = Vec::new();
        let mut t0 = 0;
        while t0 < end {
            let t1 = t0 + block;
            let mut t = t0;
            for &(te, pitch, on) in input.iter().filter(|e| e.0 >= t0 && e.0 < t1) {
                let mut handed = Vec::new();
                cap.advance(te, &mut |k, b| handed.push((k, *b)));
                for (k, b) in handed {
                    if let Some(a) = answer(k, &b) {
                        play.receive(k, a);
                    }
                }
                play.render(t0, t, te, &cap, true, &mut |e| out.push((t0, e)));
                t = te;
                if on {
                    cap.note_on(te, pitch, 100);
                } else {
                    cap.note_off(te, pitch);
                }
            }
            let mut handed = Vec::new();
            cap.advance(t1, &mut |k, b| handed.push((k, *b)));
            for (k, b) in handed {
                if let Some(a) = answer(k, &b) {
                    play.receive(k, a);
                }
            }
            play.render(t0, t, t1, &cap, true, &mut |e| out.push((t0, e)));
            t0 = t1;
        }
        let abs = out
            .into_iter()
            .map(|(t0, e)| match e {
                PlayEvent::On { offset, .. } | PlayEvent::Off { offset, .. } => {
                    (t0 + i64::from(offset), e)
                }
            })
            .collect();
        (abs, play)
    }

    fn ons(events: &[(i64, PlayEvent)]) -> Vec<(i64, u8)> {
        events
            .iter()
            .filter_map(|(t, e)| match e {
                PlayEvent::On { pitch, .. } => Some((*t, *pitch)),
                _ => None,
            })
            .collect()
    }

    fn offs(events: &[(i64, PlayEvent)]) -> Vec<(i64, u8)> {
        events
            .iter()
            .filter_map(|(t, e)| match e {
                PlayEvent::Off { pitch, .. } => Some((*t, *pitch)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn originals_come_back_delay_segments_later_sample_exact() {
        let input = [
            (10, 60, true),
            (250, 60, false),
            (1500, 62, true),
            (1700, 62, false),
        ];
        for block in [1, 7, 256, 5000] {
            for delay in [1, 2, 3] {
                let (ev, play) = run(&input, 6000, block, delay, |_, _| Some(Answer::Original));
                let d = i64::from(delay) * L;
                assert_eq!(
                    ons(&ev),
                    vec![(10 + d, 60), (1500 + d, 62)],
                    "block {block}"
                );
                assert_eq!(
                    offs(&ev),
                    vec![(250 + d, 60), (1700 + d, 62)],
                    "block {block}"
                );
                assert_eq!(play.late(), 0);
            }
        }
    }

    #[test]
    fn refined_answers_replace_their_segment_and_missing_ones_are_late() {
        let input = [
            (10, 60, true),
            (250, 60, false),
            (1100, 62, true),
            (1200, 62, false),
        ];
        let refined = NoteBuf::from_notes([SampleNote {
            pitch: 72,
            velocity: 90,
            onset: 500,
            dur: 100,
        }]);
        // Segment 0 refined in time; segment 1's answer never comes; later ones: "original".
        let (ev, play) = run(&input, 5000, 64, 2, |k, _| match k {
            0 => Some(Answer::Refined(refined)),
            1 => None,
            _ => Some(Answer::Original),
        });
        assert_eq!(ons(&ev), vec![(2500, 72), (3100, 62)]);
        assert_eq!(offs(&ev), vec![(2600, 72), (3200, 62)]);
        assert_eq!(play.late(), 1, "segment 1 fell back to the original");
        assert_eq!(play.refined_played(), 1);
    }

    #[test]
    fn all_off_balances_held_notes_and_retrigger_closes_first() {
        let mut cap = Capture::new(L as u32, 0);
        let mut play = Playback::new(L as u32, 1);
        cap.advance(0, &mut |_, _| {});
        cap.note_on(0, 60, 90);
        cap.note_on(5, 60, 90);
        cap.advance(999, &mut |_, _| {});
        let mut ev = Vec::new();
        play.render(1000, 1000, 1010, &cap, false, &mut |e| ev.push(e));
        assert_eq!(
            ev,
            vec![
                PlayEvent::On {
                    offset: 0,
                    pitch: 60,
                    velocity: 90
                },
                PlayEvent::Off {
                    offset: 5,
                    pitch: 60
                },
                PlayEvent::On {
                    offset: 5,
                    pitch: 60,
                    velocity: 90
                },
            ]
        );
        assert_eq!(play.sounding(), 1);
        ev.clear();
        play.all_off(3, true, &mut |e| ev.push(e));
        assert_eq!(
            ev,
            vec![PlayEvent::Off {
                offset: 3,
                pitch: 60
            }]
        );
        assert_eq!(play.sounding(), 0);
    }

    #[test]
    fn turns_in_lists_the_segments_whose_turn_starts() {
        let play = Playback::new(L as u32, 2);
        assert_eq!(play.turns_in(0, 256).collect::<Vec<_>>(), vec![-2]);
        assert_eq!(play.turns_in(0, 0).count(), 0);
        assert_eq!(
            play.turns_in(900, 2100).collect::<Vec<_>>(),
            vec![-2, -1, 0]
        );
    }
}
