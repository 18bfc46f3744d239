//! Track-event decoding for exactly what the reader needs: notes, sustain, programs, tempo.
//!
//! Midly still parses the file's container (header, chunks, RIFF wrapping); only the events of
//! each track are decoded here. Why: midly builds a full `TrackEvent` for every event and returns
//! it through memory, which was over half of the time spent reading a performance. This decoder
//! accepts and rejects exactly the event streams midly (without its `strict` feature) does —
//! `tests/music_smf.rs` checks that on generated streams — and yields the same values.

/// The events the reader acts on; everything else is [`Event::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    NoteOn {
        channel: u8,
        key: u8,
        vel: u8,
    },
    NoteOff {
        channel: u8,
        key: u8,
    },
    Controller {
        channel: u8,
        controller: u8,
        value: u8,
    },
    Program {
        channel: u8,
        program: u8,
    },
    /// Microseconds per quarter note.
    Tempo(u32),
    Other,
}

/// Data bytes after a channel-message status, by its high nibble.
const DATA_LEN: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 1, 1, 2, 0];

/// The events of one track's bytes, with running status.
pub struct Events<'a> {
    raw: &'a [u8],
    running: Option<u8>,
}

impl<'a> Events<'a> {
    pub fn new(raw: &'a [u8]) -> Self {
        Self { raw, running: None }
    }

    /// The next `(delta ticks, event)`; `None` at the end of the track. An unreadable event
    /// yields `Err(reason)` and ends the track. Inlined into the reader's loop, so the event
    /// stays in registers instead of round-tripping through memory.
    #[inline(always)]
    pub fn next_event(&mut self) -> Option<Result<(u32, Event), &'static str>> {
        if self.raw.is_empty() {
            return None;
        }
        let result = self.read();
        if result.is_err() {
            self.raw = &[];
        }
        Some(result)
    }

    /// A variable-length quantity of at most 4 bytes; like midly, a value cut by the end of the
    /// track keeps what was read, and a fourth byte with its top bit set still ends it.
    #[inline]
    fn varlen(&mut self) -> u32 {
        let mut value = 0u32;
        for _ in 0..4 {
            let Some((&byte, rest)) = self.raw.split_first() else {
                break;
            };
            self.raw = rest;
            value = value << 7 | u32::from(byte & 0x7f);
            if byte & 0x80 == 0 {
                break;
            }
        }
        value
    }

    /// A length-prefixed payload; one longer than the track is cut to what remains (midly).
    fn payload(&mut self) -> &'a [u8] {
        let len = self.varlen() as usize;
        let (data, rest) = self.raw.split_at(len.min(self.raw.len()));
        self.raw = rest;
        data
    }

    #[inline(always)]
    fn read(&mut self) -> Result<(u32, Event), &'static str> {
        let delta = self.varlen();
        let &first = self.raw.first().ok_or("missing status byte")?;
        let status = if first < 0x80 {
            self.running
                .ok_or("running status without a previous status")?
        } else {
            self.raw = &self.raw[1..];
            first
        };
        let event = match status {
            0x80..=0xEF => {
                self.running = Some(status);
                let len = usize::from(DATA_LEN[usize::from(status >> 4)]);
                let data = self.raw.get(..len).ok_or("truncated channel message")?;
                if data.iter().any(|&b| b >= 0x80) {
                    return Err("data byte with its top bit set");
                }
                self.raw = &self.raw[len..];
                let channel = status & 0x0f;
                match status >> 4 {
                    0x8 => Event::NoteOff {
                        channel,
                        key: data[0],
                    },
                    0x9 => Event::NoteOn {
                        channel,
                        key: data[0],
                        vel: data[1],
                    },
                    0xB => Event::Controller {
                        channel,
                        controller: data[0],
                        value: data[1],
                    },
                    0xC => Event::Program {
                        channel,
                        program: data[0],
                    },
                    _ => Event::Other,
                }
            }
            0xFF => {
                self.running = None;
                let (&kind, rest) = self.raw.split_first().ok_or("missing meta type")?;
                self.raw = rest;
                let data = self.payload();
                meta(kind, data)?
            }
            0xF0 | 0xF7 => {
                self.running = None;
                self.payload();
                Event::Other
            }
            _ => return Err("system common or real-time message in a file"),
        };
        Ok((delta, event))
    }
}

/// The meta events midly reads (and may reject); only tempo matters here.
fn meta(kind: u8, data: &[u8]) -> Result<Event, &'static str> {
    match kind {
        0x51 if data.len() >= 3 => Ok(Event::Tempo(
            u32::from(data[0]) << 16 | u32::from(data[1]) << 8 | u32::from(data[2]),
        )),
        0x54 if data.len() >= 5 => {
            let fps = [24, 25, 29, 30][usize::from(data[0] >> 5 & 3)];
            let valid = data[0] & 0x1f < 24
                && data[1] < 60
                && data[2] < 60
                && data[3] < fps
                && data[4] < 100;
            if valid {
                Ok(Event::Other)
            } else {
                Err("invalid SMPTE offset")
            }
        }
        0x59 if data.len() < 2 => Err("key signature shorter than 2 bytes"),
        _ => Ok(Event::Other),
    }
}

/// Decodes with midly instead: the reference this decoder is tested against.
#[doc(hidden)]
pub fn events_midly(raw: &[u8]) -> Vec<Result<(u32, Event), ()>> {
    use midly::{MetaMessage, MidiMessage, TrackEventKind};
    let mut out = Vec::new();
    let mut iter = midly::EventIter::new(raw);
    loop {
        let had_bytes = !iter.unread().is_empty();
        match iter.next() {
            Some(Ok(ev)) => {
                let event = match ev.kind {
                    TrackEventKind::Meta(MetaMessage::Tempo(t)) => Event::Tempo(t.as_int()),
                    TrackEventKind::Midi { channel, message } => {
                        let channel = channel.as_int();
                        match message {
                            MidiMessage::NoteOn { key, vel } => Event::NoteOn {
                                channel,
                                key: key.as_int(),
                                vel: vel.as_int(),
                            },
                            MidiMessage::NoteOff { key, .. } => Event::NoteOff {
                                channel,
                                key: key.as_int(),
                            },
                            MidiMessage::Controller { controller, value } => Event::Controller {
                                channel,
                                controller: controller.as_int(),
                                value: value.as_int(),
                            },
                            MidiMessage::ProgramChange { program } => Event::Program {
                                channel,
                                program: program.as_int(),
                            },
                            _ => Event::Other,
                        }
                    }
                    _ => Event::Other,
                };
                out.push(Ok((ev.delta.as_int(), event)));
            }
            Some(Err(_)) => {
                out.push(Err(()));
                break;
            }
            // Midly (not strict) ends a track silently at an unreadable event.
            None if had_bytes => {
                out.push(Err(()));
                break;
            }
            None => break,
        }
    }
    out
}

/// This decoder's events in the same form as [`events_midly`].
#[doc(hidden)]
pub fn events_fast(raw: &[u8]) -> Vec<Result<(u32, Event), ()>> {
    let mut events = Events::new(raw);
    std::iter::from_fn(|| events.next_event())
        .map(|r| r.map_err(|_| ()))
        .collect()
}
