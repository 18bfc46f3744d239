//! Write -> read -> tokenize on a real expressive performance (pedal, dense chords).
use improvnet::music::{parse_midi, piece_to_smf, Piece};
use improvnet::tokens::piece_tokens;

fn reread(piece: &Piece) -> Piece {
    let bytes = piece_to_smf(piece);
    Piece::from_played(
        &parse_midi(&bytes, "written.mid")
            .expect("our own MIDI parses")
            .notes,
    )
}

#[test]
fn a_written_piece_reads_back_to_the_same_tokens() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/chopin_nocturne_op15_1.mid"
    );
    let original = Piece::from_played(&improvnet::music::read_midi(path.as_ref()).unwrap().notes);
    // The first write ends a held note where its key is struck again (pedalled repeated notes);
    // nothing else changes, and from then on the piece is a fixed point, token for token.
    let written = reread(&original);
    assert_eq!(written.note_count(), original.note_count());
    // A shortened note may also move inside its chord (the reader orders a chord by note-off).
    let sorted = |notes: &[improvnet::music::Note]| {
        let mut v = notes.to_vec();
        v.sort_by_key(|n| (n.onset_ms, n.pitch, n.velocity));
        v
    };
    let changed = original
        .segments
        .iter()
        .zip(&written.segments)
        .flat_map(|(a, b)| sorted(&a.notes).into_iter().zip(sorted(&b.notes)))
        .filter(|(a, b)| a != b)
        .inspect(
            |(a, b): &(improvnet::music::Note, improvnet::music::Note)| {
                assert_eq!(
                    (a.pitch, a.velocity, a.onset_ms),
                    (b.pitch, b.velocity, b.onset_ms)
                );
                assert!(
                    b.dur_ms < a.dur_ms,
                    "only restruck notes are shortened: {a:?} -> {b:?}"
                );
            },
        )
        .count();
    assert!(changed > 0, "the pedalled nocturne restrikes held keys");
    let again = reread(&written);
    assert_eq!(piece_tokens(&again), piece_tokens(&written));
}
