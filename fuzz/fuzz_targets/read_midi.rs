//! Any bytes must give a `Performance` or an error, never a panic, and whatever is read must
//! quantize and write back out.
#![no_main]

use improvnet::music::{parse_midi, piece_to_smf, Piece};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(performance) = parse_midi(data, "fuzz.mid") {
        let piece = Piece::from_played(&performance.notes);
        let bytes = piece_to_smf(&piece);
        // What we write, we can read.
        assert!(parse_midi(&bytes, "written.mid").is_ok() || piece.note_count() == 0);
    }
});
