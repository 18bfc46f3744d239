//! Charts as MMA (Musical MIDI Accompaniment) song files, and the MMA grooves that comp on piano.
//!
//! Every groove below exists in Debian's mma 21.09 standard library and was rendered to check
//! that a piano program (GM 0–7) plays notes in it; grooves that comp only on guitar or organ
//! (Swing, Swing2, SwingWalk, EasySwing, SlowBlues, SlowJazz2, BigBand) are left out, because the
//! jazz side of the corpus must be piano.

use std::fmt::Write;

use super::form::{Chart, Form};

/// An MMA groove and the tempi and swing it is played at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Groove {
    /// The name after MMA's `Groove` command (as in `DefGroove`).
    pub name: &'static str,
    pub beats_per_bar: u8,
    /// Tempo range in bpm, inside 80–260.
    pub tempo: (u16, u16),
    /// Long eighth's share of the beat in percent; `None` is a straight-eighth groove.
    pub swing: Option<(u8, u8)>,
}

const fn groove(name: &'static str, tempo: (u16, u16), swing: Option<(u8, u8)>) -> Groove {
    Groove {
        name,
        beats_per_bar: 4,
        tempo,
        swing,
    }
}

const fn waltz(name: &'static str, tempo: (u16, u16)) -> Groove {
    Groove {
        name,
        beats_per_bar: 3,
        tempo,
        swing: Some((62, 68)),
    }
}

/// Fast tempi swing flatter; ballads and shuffles deeper.
const FAST: Option<(u8, u8)> = Some((60, 64));
const MEDIUM: Option<(u8, u8)> = Some((62, 68));
const DEEP: Option<(u8, u8)> = Some((64, 70));

/// The piano-comping grooves the generator uses.
pub const GROOVES: [Groove; 28] = [
    groove("Bebop", (190, 260), FAST),
    groove("FastSwing", (180, 240), FAST),
    groove("Swing1", (120, 180), MEDIUM),
    groove("JazzCombo", (110, 190), MEDIUM),
    groove("JazzCombo1", (110, 190), MEDIUM),
    groove("JazzCombo2", (110, 190), MEDIUM),
    groove("ModernJazz", (100, 180), MEDIUM),
    groove("ModernJazz1", (100, 180), MEDIUM),
    groove("Evansish", (80, 130), DEEP),
    groove("Evansish1", (80, 130), DEEP),
    groove("SlowJazz", (80, 110), DEEP),
    groove("SlowJazz1", (80, 110), DEEP),
    groove("SlowJazzWalk", (80, 110), DEEP),
    groove("NiteJazz", (80, 120), DEEP),
    groove("MellowJazz", (90, 130), DEEP),
    groove("FolkyJazzPiano", (90, 140), MEDIUM),
    groove("Blues", (90, 140), DEEP),
    groove("Blues1", (90, 140), DEEP),
    groove("BoggieWoggie", (120, 180), DEEP),
    groove("BoggieWoggie1", (120, 180), DEEP),
    groove("BoggieWoggie2", (120, 180), DEEP),
    groove("BoggieWoggie3", (120, 180), DEEP),
    groove("Ragtime", (90, 140), None),
    waltz("JazzWaltz", (100, 160)),
    waltz("JazzWaltz1", (100, 160)),
    waltz("JazzWaltz2", (100, 160)),
    waltz("FastJazzWaltz", (150, 200)),
    waltz("ModernJazzWaltz", (100, 150)),
];

/// The grooves that suit a form (names from [`GROOVES`]).
pub fn grooves_for(form: Form) -> &'static [&'static str] {
    match form {
        Form::Blues => &[
            "Blues",
            "Blues1",
            "BoggieWoggie",
            "BoggieWoggie1",
            "BoggieWoggie2",
            "BoggieWoggie3",
            "SlowJazzWalk",
        ],
        Form::JazzBlues => &[
            "Bebop",
            "JazzCombo",
            "JazzCombo1",
            "Swing1",
            "FastSwing",
            "ModernJazz",
            "NiteJazz",
        ],
        Form::RhythmChanges => &["Bebop", "FastSwing", "JazzCombo2", "Swing1", "Ragtime"],
        Form::TwoFiveOneCycle => &[
            "JazzCombo",
            "JazzCombo1",
            "ModernJazz1",
            "Evansish",
            "Bebop",
        ],
        Form::AabaSong => &[
            "SlowJazz",
            "SlowJazz1",
            "Evansish",
            "Evansish1",
            "MellowJazz",
            "NiteJazz",
            "JazzCombo",
            "FolkyJazzPiano",
            "Ragtime",
        ],
        Form::ModalVamp => &["ModernJazz", "ModernJazz1", "JazzCombo2", "Evansish1"],
        Form::JazzWaltz => &[
            "JazzWaltz",
            "JazzWaltz1",
            "JazzWaltz2",
            "FastJazzWaltz",
            "ModernJazzWaltz",
        ],
    }
}

/// A groove by name.
pub fn find_groove(name: &str) -> Option<&'static Groove> {
    GROOVES.iter().find(|g| g.name == name)
}

/// The chart as an MMA song file.
///
/// `RndSeed` pins MMA's humanisation (it is seeded from the clock otherwise); `SwingMode Skew`
/// comes before `Groove` because MMA applies it when it compiles the groove's patterns; bars are
/// written beat by beat (`Dm7 / G7 /`) so a split bar cannot be read two ways.
pub fn to_mma(chart: &Chart) -> String {
    let mut s = String::new();
    let bars = chart.bars.len();
    let _ = writeln!(
        s,
        "// improvnet corpus chart: {} in {}, {bars} bars, {} bpm, {} (swing {}%)",
        chart.form.name(),
        chart.key_name(),
        chart.tempo_bpm,
        chart.groove,
        chart.swing_percent,
    );
    if !chart.substitutions.is_empty() {
        let _ = writeln!(s, "// substitutions: {}", chart.substitutions.join(", "));
    }
    let _ = writeln!(s, "RndSeed {}", chart.seed % 1_000_000_007);
    let _ = writeln!(s, "Tempo {}", chart.tempo_bpm);
    if chart.beats_per_bar != 4 {
        let _ = writeln!(s, "Time {}", chart.beats_per_bar);
        let _ = writeln!(s, "TimeSig {} 4", chart.beats_per_bar);
    }
    if chart.swing_percent != 50 {
        let _ = writeln!(s, "SwingMode Skew={}", chart.swing_percent);
    }
    let _ = writeln!(s, "Groove {}", chart.groove);
    for (i, bar) in chart.bars.iter().enumerate() {
        let beats: Vec<String> = (0..chart.beats_per_bar)
            .map(|beat| {
                let chord = bar.chord_on_beat(beat);
                let changes = beat == 0 || bar.chord_on_beat(beat - 1) != chord;
                if changes {
                    chord.to_string()
                } else {
                    "/".to_string()
                }
            })
            .collect();
        let line = if bar.chords.len() == 1 {
            // One chord: MMA holds it for the bar.
            beats[0].clone()
        } else {
            beats.join(" ")
        };
        let _ = writeln!(s, "{} {line}", i + 1);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::charts;
    use std::collections::HashSet;
    use std::path::Path;
    use std::process::Command;

    const STDLIB: &str = "/usr/share/mma/lib/stdlib";

    fn mma_installed() -> bool {
        Command::new("mma").arg("-v").output().is_ok() && Path::new(STDLIB).is_dir()
    }

    /// Every `DefGroove NAME` in the installed stdlib, lower-cased (MMA ignores case).
    fn stdlib_grooves() -> HashSet<String> {
        let mut names = HashSet::new();
        for entry in std::fs::read_dir(STDLIB).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "mma") {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                for line in text.lines() {
                    let mut words = line.split_whitespace();
                    if words
                        .next()
                        .is_some_and(|w| w.eq_ignore_ascii_case("defgroove"))
                    {
                        if let Some(name) = words.next() {
                            names.insert(name.to_lowercase());
                        }
                    }
                }
            }
        }
        names
    }

    #[test]
    fn every_form_groove_is_listed_and_fits_the_meter() {
        for form in Form::ALL {
            for name in grooves_for(form) {
                let g = find_groove(name).unwrap_or_else(|| panic!("{name} not in GROOVES"));
                assert_eq!(g.beats_per_bar, form.beats_per_bar(), "{name}");
                assert!(80 <= g.tempo.0 && g.tempo.0 <= g.tempo.1 && g.tempo.1 <= 260);
            }
        }
    }

    #[test]
    fn every_groove_exists_in_the_installed_mma_stdlib() {
        if !mma_installed() {
            println!("mma is not installed (apt-get install mma): groove names not checked");
            return;
        }
        let known = stdlib_grooves();
        for g in GROOVES {
            assert!(
                known.contains(&g.name.to_lowercase()),
                "{} not in {STDLIB}",
                g.name
            );
        }
    }

    #[test]
    fn writes_tempo_groove_meter_and_numbered_bars() {
        let chart = charts(7, 5)
            .into_iter()
            .find(|c| c.form == Form::JazzWaltz)
            .unwrap();
        let text = to_mma(&chart);
        assert!(text.contains(&format!("Tempo {}\n", chart.tempo_bpm)));
        assert!(text.contains(&format!("Groove {}\n", chart.groove)));
        assert!(text.contains("Time 3\nTimeSig 3 4\n"));
        let bar_lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        assert_eq!(bar_lines.len(), chart.bars.len());
        assert!(bar_lines[0].starts_with("1 "));

        let blues = charts(7, 5)
            .into_iter()
            .find(|c| c.form == Form::JazzBlues)
            .unwrap();
        let text = to_mma(&blues);
        assert!(!text.contains("Time 3"));
        assert!(text.contains("SwingMode Skew="));
    }

    #[test]
    fn split_bars_are_written_beat_by_beat() {
        let cycle = charts(7, 1)
            .into_iter()
            .find(|c| c.form == Form::RhythmChanges)
            .unwrap();
        let text = to_mma(&cycle);
        let first = text.lines().find(|l| l.starts_with("1 ")).unwrap();
        let words: Vec<&str> = first.split_whitespace().collect();
        assert_eq!(words.len(), 5, "{first}");
        assert_eq!(words[2], "/");
        assert_eq!(words[4], "/");
    }

    /// Renders one chart per groove with the installed mma and checks that a piano program
    /// plays notes in the MIDI it writes.
    #[test]
    fn mma_renders_every_groove_with_a_piano_voice() {
        if !mma_installed() {
            println!("mma is not installed (apt-get install mma): rendering not checked");
            return;
        }
        let dir = std::env::temp_dir().join(format!("improvnet-mma-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = charts(7, 11);
        for g in GROOVES {
            let mut chart = base
                .iter()
                .find(|c| c.beats_per_bar == g.beats_per_bar)
                .unwrap()
                .clone();
            chart.groove = g.name;
            chart.bars.truncate(8);
            let src = dir.join(format!("{}.mma", g.name));
            let out = dir.join(format!("{}.mid", g.name));
            std::fs::write(&src, to_mma(&chart)).unwrap();
            let run = Command::new("mma")
                .arg("-f")
                .arg(&out)
                .arg(&src)
                .output()
                .unwrap();
            assert!(
                run.status.success(),
                "mma failed on {}: {}",
                g.name,
                String::from_utf8_lossy(&run.stderr)
            );
            let bytes = std::fs::read(&out).unwrap();
            assert!(piano_note_ons(&bytes) > 0, "{}: no piano notes", g.name);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Note-ons on non-drum channels whose program is a GM piano (0–7).
    fn piano_note_ons(bytes: &[u8]) -> usize {
        use midly::{MidiMessage, Smf, TrackEventKind};
        let smf = Smf::parse(bytes).unwrap();
        let mut program = [None::<u8>; 16];
        // MMA writes each instrument on its own track; programs come before their notes in time
        // order, so merge tracks by absolute tick first.
        let mut events = Vec::new();
        for track in &smf.tracks {
            let mut tick = 0u64;
            for e in track {
                tick += u64::from(e.delta.as_int());
                if let TrackEventKind::Midi { channel, message } = e.kind {
                    events.push((tick, channel.as_int(), message));
                }
            }
        }
        events.sort_by_key(|&(t, _, m)| (t, !matches!(m, MidiMessage::ProgramChange { .. })));
        let mut count = 0;
        for (_, ch, message) in events {
            match message {
                MidiMessage::ProgramChange { program: p } => {
                    program[ch as usize] = Some(p.as_int())
                }
                MidiMessage::NoteOn { vel, .. } if vel > 0 && ch != 9 => {
                    count += usize::from(program[ch as usize].is_some_and(|p| p <= 7));
                }
                _ => {}
            }
        }
        count
    }
}
