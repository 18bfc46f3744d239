//! The ImprovNet vocabulary with its exact ids, and the sequence layouts built from it.
//!
//! Pure: music types in, `u32` ids out (and back). The model only ever sees these ids.

mod layout;
mod vocab;

pub use layout::{
    classifier_input, decoder_target, encoder_input, encoder_input_with_tail, pad, parse_notes,
    piece_tokens, push_note_tokens, segment_tokens, BlockElement, CorruptedSegment, MaskedNote,
    Padded, ParsedNotes, PitchVelocity, Tail, CLASSIFIER_MAX_LEN, DECODER_MAX_LEN, ENCODER_MAX_LEN,
};
pub use vocab::{velocity_index_exact, velocity_row};
pub use vocab::{
    Corruption, Genre, Token, UnknownName, BOS, CORRUPTION_BASE, DUR_BASE, D_TOKEN, EOS,
    GENRE_BASE, MASK, MASK_DUR, MASK_ONSET, MASK_PITCH_VELOCITY, MAX_TIME_MS, ONSET_BASE, PAD,
    PIANO_BASE, PREFIX, SEP, TIME_STEP_MS, T_SEP, U_TOKEN, VELOCITY_BINS, VOCAB_SIZE,
};
