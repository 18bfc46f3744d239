//! A piano-roll PNG: the original above, the result below, the T-segments that changed shaded
//! in both, so a musician sees at a glance what the model touched and what it kept.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::RenderError;
use crate::fonts::have_font;
use crate::music::{Piece, Segment};

/// Fonts tried for labels. Text is optional: without a font the roll is drawn unlabelled.
const LOWEST: i32 = 21;
const HIGHEST: i32 = 108;
const CHANGED: RGBColor = RGBColor(255, 226, 190);
const GRID: RGBColor = RGBColor(225, 225, 225);

/// Size and captions of the roll.
#[derive(Clone, Debug)]
pub struct RollOptions {
    pub width_px: u32,
    /// Height of each of the two panels.
    pub panel_height_px: u32,
    pub original_title: String,
    pub result_title: String,
}

impl Default for RollOptions {
    fn default() -> Self {
        Self {
            width_px: 1600,
            panel_height_px: 420,
            original_title: "original".into(),
            result_title: "result".into(),
        }
    }
}

/// Windows (5 s T-segment positions) whose notes differ between `original` and `result`,
/// ascending. A window present in only one of them counts as changed.
pub fn changed_windows(original: &Piece, result: &Piece) -> Vec<u32> {
    let notes_at = |p: &Piece, w: u32| -> Option<Segment> {
        p.segments.iter().find(|s| s.window == w).cloned()
    };
    let mut windows: Vec<u32> = original
        .segments
        .iter()
        .chain(&result.segments)
        .map(|s| s.window)
        .collect();
    windows.sort_unstable();
    windows.dedup();
    windows
        .into_iter()
        .filter(|&w| notes_at(original, w) != notes_at(result, w))
        .collect()
}

/// Draws `original` over `result` into a PNG at `out` (written to a temporary file, then
/// renamed). Returns the changed windows it shaded.
pub fn plot_piano_roll(
    original: &Piece,
    result: &Piece,
    out: &Path,
    opts: &RollOptions,
) -> Result<Vec<u32>, RenderError> {
    let changed = changed_windows(original, result);
    let end_s = (original.duration_ms().max(result.duration_ms()) as f64 / 1000.0).max(5.0);
    let tmp = temp_path(out);
    let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
        let root =
            BitMapBackend::new(&tmp, (opts.width_px, opts.panel_height_px * 2)).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, bottom) = root.split_vertically(opts.panel_height_px);
        panel(&top, original, &changed, end_s, &opts.original_title)?;
        panel(&bottom, result, &changed, end_s, &opts.result_title)?;
        root.present()?;
        Ok(())
    })();
    let renamed = drawn.and_then(|()| std::fs::rename(&tmp, out).map_err(Into::into));
    renamed.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        RenderError::Write {
            path: out.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    Ok(changed)
}

fn temp_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "roll.png".into());
    // Keep the .png extension: the bitmap encoder picks the format from it.
    out.with_file_name(format!(".{}.{}.tmp.png", name, std::process::id()))
}

fn panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    piece: &Piece,
    changed: &[u32],
    end_s: f64,
    title: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let labels = have_font();
    let mut builder = ChartBuilder::on(area);
    builder.margin(8);
    if labels {
        builder
            .caption(title, ("sans-serif", 18))
            .x_label_area_size(28)
            .y_label_area_size(40);
    }
    let mut chart = builder.build_cartesian_2d(0.0..end_s, LOWEST..HIGHEST + 1)?;
    if labels {
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("seconds")
            .y_desc("pitch")
            .draw()?;
    }
    // Changed T-segments first, so notes draw over the shading.
    chart.draw_series(changed.iter().map(|&w| {
        let x0 = w as f64 * 5.0;
        Rectangle::new([(x0, LOWEST), (x0 + 5.0, HIGHEST + 1)], CHANGED.filled())
    }))?;
    let n_windows = (end_s / 5.0).ceil() as u32;
    chart.draw_series((0..=n_windows).map(|w| {
        let x = w as f64 * 5.0;
        PathElement::new(vec![(x, LOWEST), (x, HIGHEST + 1)], GRID)
    }))?;
    chart.draw_series(piece.to_played().into_iter().map(|n| {
        let x0 = n.start_ms as f64 / 1000.0;
        let x1 = (n.start_ms + n.dur_ms.max(10)) as f64 / 1000.0;
        let y = n.pitch as i32;
        // Louder notes darker: velocity is half of what a pianist hears in a roll.
        let shade = 200 - (n.velocity as u32 * 170 / 127) as u8;
        Rectangle::new(
            [(x0, y), (x1, y + 1)],
            RGBColor(shade / 2, shade / 2, 255 - shade / 3).filled(),
        )
    }))?;
    Ok(())
}
