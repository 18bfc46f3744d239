//! Opens the plugin's editor UI in a window without a host, with plausible status data, for
//! `scripts/editor_screenshot.sh` (docs/editor.png). The same `draw` function as in a DAW.
//!
//! ```text
//! cargo run --features editor --example editor_screenshot [-- SECONDS]
//! ```
//! With SECONDS the window closes itself after that long (default: stays open).

use std::sync::Arc;
use std::time::{Duration, Instant};

use improvnet::plugin::editor::{draw, egui, EditorView, Hostless, UiState};
use improvnet::plugin::notes::{NoteBuf, SampleNote};
use improvnet::plugin::params::{EditorSize, ImprovParams};
use improvnet::plugin::worker::{LastSegment, ModelState};
use nice_plug::context::gui::GuiContext;
use nice_plug_egui::baseview::dpi::LogicalSize;
use nice_plug_egui::{EguiWindow, EguiWindowSettings};

const SR: f32 = 48_000.0;

/// A jazz-ish phrase as played (seconds, length, pitch, velocity)...
fn played() -> NoteBuf {
    let s = |t: f32| (t * SR) as u32;
    let notes = [
        (0.00, 0.45, 67, 92),
        (0.50, 0.25, 69, 80),
        (0.75, 0.25, 70, 84),
        (1.00, 0.70, 72, 100),
        (1.00, 1.90, 55, 70),
        (1.00, 1.90, 58, 66),
        (1.75, 0.25, 70, 78),
        (2.00, 0.45, 69, 86),
        (2.50, 0.45, 65, 82),
        (3.00, 1.20, 67, 96),
        (3.00, 1.80, 53, 68),
        (3.00, 1.80, 57, 64),
        (4.25, 0.50, 62, 76),
    ];
    NoteBuf::from_notes(notes.iter().map(|&(t, d, p, v)| SampleNote {
        pitch: p,
        velocity: v,
        onset: s(t),
        dur: s(d),
    }))
}

/// ...and the kind of answer the model gives: the same frame, a busier line, richer voicings.
fn answered() -> NoteBuf {
    let s = |t: f32| (t * SR) as u32;
    let notes = [
        (0.00, 0.30, 67, 90),
        (0.33, 0.17, 70, 76),
        (0.50, 0.25, 72, 84),
        (0.75, 0.25, 74, 88),
        (1.00, 0.50, 75, 102),
        (1.00, 1.80, 51, 72),
        (1.00, 1.80, 58, 66),
        (1.00, 1.80, 62, 64),
        (1.50, 0.25, 74, 80),
        (1.75, 0.25, 72, 78),
        (2.00, 0.60, 70, 90),
        (2.67, 0.33, 67, 74),
        (3.00, 0.50, 69, 94),
        (3.00, 1.90, 53, 70),
        (3.00, 1.90, 57, 62),
        (3.00, 1.90, 60, 60),
        (3.50, 0.50, 72, 88),
        (4.00, 0.90, 77, 96),
        (4.50, 0.45, 48, 66),
    ];
    NoteBuf::from_notes(notes.iter().map(|&(t, d, p, v)| SampleNote {
        pitch: p,
        velocity: v,
        onset: s(t),
        dur: s(d),
    }))
}

fn view() -> EditorView {
    EditorView {
        model_state: ModelState::Ready,
        message: "/home/me/improvnet/models/improvnet-jazz".into(),
        last_ms: 1184,
        median_ms: 1126,
        refined: 37,
        late: 1,
        errors: 0,
        queue_depth: 1,
        queue_full: 0,
        dropped_notes: 0,
        last: Some(LastSegment {
            index: 41,
            sample_rate: SR,
            input: played(),
            output: Some(answered()),
        }),
    }
}

struct App {
    params: Arc<ImprovParams>,
    gui: GuiContext,
    view: EditorView,
    state: UiState,
    close_at: Option<Instant>,
}

impl nice_plug_egui::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut nice_plug_egui::Frame) {
        let setter = self.gui.param_setter();
        let _ = draw(ui, &self.params, &self.view, &mut self.state, &setter);
        ui.ctx().request_repaint_after(Duration::from_millis(100));
        if self.close_at.is_some_and(|t| Instant::now() >= t) {
            frame.baseview_window().request_close();
        }
    }
}

fn main() {
    let seconds: Option<f64> = std::env::args().nth(1).and_then(|s| s.parse().ok());
    let params = Arc::new(ImprovParams::default());
    if let Ok(mut dir) = params.model_dir.write() {
        *dir = "/home/me/improvnet/models/improvnet-jazz".into();
    }
    let app = App {
        params,
        gui: GuiContext::new(Arc::new(Hostless)),
        view: view(),
        state: UiState::default(),
        close_at: seconds.map(|s| Instant::now() + Duration::from_secs_f64(s)),
    };
    // Safety: this is a standalone process, not a plugin inside a host.
    unsafe { nice_plug_egui::baseview::assume_standalone_in_process() };
    let size = EditorSize::DEFAULT;
    EguiWindow::create(
        EguiWindowSettings::new()
            .with_title("ImprovNet")
            .with_size(LogicalSize::new(
                f64::from(size.width),
                f64::from(size.height),
            )),
        app,
    )
    .expect("cannot open the editor window")
    .run_until_closed()
    .expect("the editor window failed");
}
