//! The fixed-capacity note buffer both real-time halves share: a segment's notes in sample time,
//! copied by value through the channels so that nothing on the audio thread allocates.

/// Notes one segment can hold. The decoder writes at most 512 tokens (about 170 notes), so a
/// refined segment always fits; live input beyond this is counted as dropped.
pub const MAX_NOTES: usize = 256;

/// Duration of a note whose key is still down.
pub const OPEN: u32 = u32::MAX;

/// A note inside one segment, in samples from the segment's start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleNote {
    pub pitch: u8,
    /// MIDI velocity, 1..=127.
    pub velocity: u8,
    pub onset: u32,
    /// Samples the key is held, or [`OPEN`].
    pub dur: u32,
}

/// A segment's notes in onset order, without a heap.
#[derive(Clone, Copy, Debug)]
pub struct NoteBuf {
    len: u16,
    notes: [SampleNote; MAX_NOTES],
}

impl Default for NoteBuf {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl PartialEq for NoteBuf {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl NoteBuf {
    pub const EMPTY: NoteBuf = NoteBuf {
        len: 0,
        notes: [SampleNote {
            pitch: 0,
            velocity: 0,
            onset: 0,
            dur: 0,
        }; MAX_NOTES],
    };

    /// Appends `note`; `None` (nothing stored) when the buffer is full.
    pub fn push(&mut self, note: SampleNote) -> Option<usize> {
        let i = usize::from(self.len);
        let slot = self.notes.get_mut(i)?;
        *slot = note;
        self.len += 1;
        Some(i)
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[SampleNote] {
        &self.notes[..usize::from(self.len)]
    }

    pub fn as_mut_slice(&mut self) -> &mut [SampleNote] {
        &mut self.notes[..usize::from(self.len)]
    }

    pub fn get(&self, i: usize) -> Option<&SampleNote> {
        self.as_slice().get(i)
    }

    /// Builds a buffer from `notes`, keeping the first [`MAX_NOTES`] (off the audio thread).
    pub fn from_notes(notes: impl IntoIterator<Item = SampleNote>) -> Self {
        let mut buf = Self::EMPTY;
        for n in notes {
            if buf.push(n).is_none() {
                break;
            }
        }
        buf
    }
}
