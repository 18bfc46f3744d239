//! `improvnet render`: hear a MIDI file through a SoundFont, or see it against another as a
//! piano roll (`common::write_renderings`, which the generation commands' `--wav` / `--plot` use too).
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use improvnet::music::{parse_midi, piece_to_smf, read_midi, Piece};

use super::common::write_renderings;

#[derive(Args)]
pub struct RenderArgs {
    /// A piano MIDI file.
    file: PathBuf,
    /// Write a 16-bit stereo WAV rendered with a SoundFont.
    #[arg(long)]
    wav: Option<PathBuf>,
    /// SoundFont 2 file for --wav (default: the first installed General MIDI SoundFont).
    #[arg(long)]
    soundfont: Option<PathBuf>,
    #[arg(long, default_value_t = 44_100)]
    sample_rate: u32,
    /// Write a piano-roll PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Draw this MIDI file above FILE in the roll, shading the T-segments that differ.
    #[arg(long)]
    against: Option<PathBuf>,
    /// Only the first N T-segments (5 s each) of both files: a short preview to listen to.
    #[arg(long)]
    segments: Option<usize>,
}

pub fn run(args: RenderArgs) -> Result<()> {
    if args.wav.is_none() && args.plot.is_none() {
        bail!("nothing to do: give --wav OUT.wav and/or --plot OUT.png");
    }
    if args.segments == Some(0) {
        bail!("--segments 0 leaves nothing to render; give 1 or more");
    }
    // Both sides as our writer writes them: a file straight from a DAW holds overlapping
    // same-pitch notes that any written MIDI file (ours included) must cut, so comparing it raw
    // with a generated file would shade every T-segment.
    let read = |p: &Path| -> Result<Piece> {
        let piece = read_midi(p)
            .with_context(|| format!("reading {}", p.display()))?
            .to_piece();
        let mut piece = parse_midi(&piece_to_smf(&piece), &p.display().to_string())?.to_piece();
        if let Some(n) = args.segments {
            piece.segments.truncate(n);
        }
        Ok(piece)
    };
    let piece = read(&args.file)?;
    let original = args.against.as_deref().map(read).transpose()?;
    write_renderings(
        &piece,
        original.as_ref(),
        args.wav.as_deref(),
        args.soundfont.as_deref(),
        args.sample_rate,
        args.plot.as_deref(),
    )
}
