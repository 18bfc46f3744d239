//! The loss curve of a run, from `train_log.csv` and `valid_log.csv`: a PNG drawn with
//! plotters (labelled when a system font is installed) and a dependency-free SVG twin that
//! always carries its labels.

use std::path::Path;

use super::error::{io, TrainError};

/// `(step, value)` of column `col` of a CSV with a header row; unparsable rows are skipped.
fn series(path: &Path, col: usize) -> Result<Vec<(f64, f64)>, TrainError> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            Some((cols.first()?.parse().ok()?, cols.get(col)?.parse().ok()?))
        })
        .filter(|(_, v): &(f64, f64)| v.is_finite())
        .collect())
}

/// Mean over a trailing window of `w` points (the raw per-step loss is very noisy).
fn smooth(points: &[(f64, f64)], w: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len());
    let mut sum = 0.0;
    for (i, &(x, y)) in points.iter().enumerate() {
        sum += y;
        if i >= w {
            sum -= points[i - w].1;
        }
        out.push((x, sum / (i + 1).min(w) as f64));
    }
    out
}

/// `(step, loss)` points.
type Curve = Vec<(f64, f64)>;

/// Training loss (mean of 25 steps) and validation loss of a run; an error when both are empty.
fn curves(run: &Path) -> Result<(Curve, Curve), TrainError> {
    let train = smooth(&series(&run.join("train_log.csv"), 2)?, 25);
    let valid = series(&run.join("valid_log.csv"), 1)?;
    if train.is_empty() && valid.is_empty() {
        return Err(TrainError::Config(format!(
            "{}: no train_log.csv or valid_log.csv rows to plot",
            run.display()
        )));
    }
    Ok((train, valid))
}

/// The axes both plots share: the last step (at least 1), and the loss range widened to whole
/// numbers.
fn bounds(train: &Curve, valid: &Curve) -> (f64, f64, f64) {
    let all = || train.iter().chain(valid);
    let x_max = all().map(|p| p.0).fold(1.0, f64::max);
    let y_min = all().map(|p| p.1).fold(f64::INFINITY, f64::min).floor();
    let y_max = all().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max).ceil();
    (x_max, y_min, y_max)
}

/// Writes `run/loss.png` (800 x 420, temp file + rename).
pub fn write_loss_png(run: &Path) -> Result<std::path::PathBuf, TrainError> {
    use plotters::prelude::*;
    let (train, valid) = curves(run)?;
    let path = run.join("loss.png");
    let tmp = run.join("loss.tmp.png");
    let (x_max, y_min, y_max) = bounds(&train, &valid);
    let labels = crate::fonts::have_font();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(&tmp, (800, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut builder = ChartBuilder::on(&root);
        builder.margin(20);
        if labels {
            builder
                .caption("loss", ("sans-serif", 18))
                .x_label_area_size(36)
                .y_label_area_size(48);
        }
        let mut chart = builder.build_cartesian_2d(0.0..x_max, y_min..y_max.max(y_min + 1e-9))?;
        let mut mesh = chart.configure_mesh();
        if labels {
            mesh.x_desc("step");
        } else {
            mesh.disable_x_mesh().disable_y_mesh();
        }
        mesh.draw()?;
        let blue = RGBColor(0x1f, 0x77, 0xb4);
        let red = RGBColor(0xd6, 0x27, 0x28);
        let series = [
            (&train, blue, "training loss (mean of 25 steps)"),
            (&valid, red, "validation loss"),
        ];
        for (points, color, name) in series {
            let drawn = chart.draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?;
            if labels {
                drawn
                    .label(name)
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
            }
        }
        if labels {
            chart
                .configure_series_labels()
                .background_style(WHITE)
                .border_style(BLACK)
                .draw()?;
        }
        root.present()?;
        Ok(())
    })();
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&tmp);
        return Err(TrainError::Config(format!("{}: {e}", path.display())));
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path)
}

/// The SVG text: training loss (mean of 25 steps) and validation loss against the step.
pub fn loss_svg(run: &Path) -> Result<String, TrainError> {
    let (train, valid) = curves(run)?;
    let (w, h, m) = (800.0, 420.0, 60.0);
    let (x_max, y_min, y_max) = bounds(&train, &valid);
    let y_span = (y_max - y_min).max(1e-9);
    let px = |x: f64| m + x / x_max * (w - 2.0 * m);
    let py = |y: f64| h - m - (y - y_min) / y_span * (h - 2.0 * m);
    let line = |pts: &[(f64, f64)], color: &str| {
        let d: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
            d.join(" ")
        )
    };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" \
         fill=\"white\"/>\n<rect x=\"{m}\" y=\"{m}\" width=\"{}\" height=\"{}\" fill=\"none\" \
         stroke=\"#888\"/>\n",
        w - 2.0 * m,
        h - 2.0 * m
    );
    for i in 0..=5 {
        let y = y_min + y_span * i as f64 / 5.0;
        let x = x_max * i as f64 / 5.0;
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{y:.2}</text>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{x:.0}</text>\n",
            m - 6.0,
            py(y) + 4.0,
            px(x),
            h - m + 18.0
        ));
    }
    s.push_str(&line(&train, "#1f77b4"));
    s.push_str(&line(&valid, "#d62728"));
    s.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n\
         <text x=\"{m}\" y=\"{}\" fill=\"#1f77b4\">training loss (mean of 25 steps)</text>\n\
         <text x=\"{}\" y=\"{}\" fill=\"#d62728\">validation loss</text>\n</svg>\n",
        w / 2.0,
        h - 15.0,
        m - 20.0,
        m + 260.0,
        m - 20.0
    ));
    Ok(s)
}

/// Writes `run/loss.svg` (temp file + rename).
pub fn write_loss_svg(run: &Path) -> Result<std::path::PathBuf, TrainError> {
    let svg = loss_svg(run)?;
    let path = run.join("loss.svg");
    let tmp = run.join("loss.svg.tmp");
    std::fs::write(&tmp, svg).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path)
}
