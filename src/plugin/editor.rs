//! The plugin's editor (feature `editor`): the parameters, the model and its status, refine
//! latency, late count, queue depth, and a piano roll of the last segment as played and as
//! answered.
//!
//! [`draw`] is the whole UI as a function of plain data ([`EditorView`]), the parameters and a
//! [`ParamSetter`], so `examples/editor_screenshot.rs` renders it without a host. [`ImprovEditor`]
//! is the plumbing: it opens an egui window (nice-plug-egui, OpenGL) at the size saved with the
//! project and saves the size back when the host resizes it.
//!
//! The editor reads what the worker and the audio thread already publish in [`Status`]
//! (atomics; the two small mutexes there are taken by the worker and the GUI only).

use std::error::Error;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nice_plug::context::gui::GuiContext;
use nice_plug::editor::dpi::{LogicalSize, NativeSize, Size};
use nice_plug::editor::{HostMethods, SpawnedEditor};
use nice_plug::prelude::*;
use nice_plug_egui::baseview::WindowSize;
use nice_plug_egui::widgets::ParamSlider;
use nice_plug_egui::{
    create_egui_editor, EguiEditorHandle, EguiEditorState, EguiNiceSettings, NiceEguiApp,
    RepaintNotifier,
};

use super::notes::{NoteBuf, OPEN};
use super::params::{EditorSize, ImprovParams};
use super::presets::{Preset, PRESETS};
use super::worker::{cores, inference_threads, LastSegment, ModelState, Status};
use super::SEGMENT_SECONDS;

pub use egui;

/// How often an open editor redraws to follow the status.
const REFRESH: Duration = Duration::from_millis(100);
/// Width of the parameter sliders.
const SLIDER_WIDTH: f32 = 180.0;

const INPUT_COLOR: egui::Color32 = egui::Color32::from_rgb(90, 160, 230);
const OUTPUT_COLOR: egui::Color32 = egui::Color32::from_rgb(240, 150, 60);
const ORIGINAL_COLOR: egui::Color32 = egui::Color32::from_rgb(130, 130, 140);

/// What the editor shows besides the parameters: a copy of [`Status`] taken once per frame.
#[derive(Clone, Debug)]
pub struct EditorView {
    pub model_state: ModelState,
    /// The model folder when loaded, else what went wrong or why there is none.
    pub message: String,
    pub last_ms: u32,
    pub median_ms: u32,
    pub refined: u64,
    pub late: u64,
    pub errors: u64,
    /// Segments sent to the worker and not answered yet.
    pub queue_depth: u64,
    /// Segments not sent because the queue was full.
    pub queue_full: u64,
    pub dropped_notes: u64,
    pub last: Option<LastSegment>,
}

impl EditorView {
    pub fn from_status(s: &Status) -> Self {
        let message = s.message.lock().map(|m| m.clone()).unwrap_or_default();
        Self {
            model_state: s.model_state(),
            message,
            last_ms: s.last_ms.load(Ordering::Relaxed),
            median_ms: s.median_ms.load(Ordering::Relaxed),
            refined: s.refined.load(Ordering::Relaxed),
            late: s.late.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            queue_depth: s.pending.load(Ordering::Relaxed),
            queue_full: s.queue_full.load(Ordering::Relaxed),
            dropped_notes: s.dropped_notes.load(Ordering::Relaxed),
            last: s.last_segment(),
        }
    }
}

/// GUI-only state kept between frames.
#[derive(Clone, Debug, Default)]
pub struct UiState {
    /// The model folder being typed; filled from the parameters on the first frame.
    pub model_dir: Option<String>,
}

/// What the plumbing must do after a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditorAction {
    /// The model folder changed: ask the host to restart the plugin (the worker loads the model
    /// on activation).
    ReloadModel,
}

/// The whole editor UI.
pub fn draw(
    ui: &mut egui::Ui,
    params: &ImprovParams,
    view: &EditorView,
    state: &mut UiState,
    setter: &ParamSetter,
) -> Option<EditorAction> {
    let mut action = None;
    egui::CentralPanel::default().show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.heading("ImprovNet");
            ui.separator();
            let (label, color) = model_state_label(view.model_state);
            ui.colored_label(color, label);
            ui.label(model_name(params, view));
        });
        ui.separator();
        ui.columns_const(|[left, right]| {
            parameters(left, params, setter);
            action = status(right, params, view, state);
        });
        ui.separator();
        piano_roll(ui, view.last.as_ref());
    });
    action
}

fn model_state_label(s: ModelState) -> (&'static str, egui::Color32) {
    match s {
        ModelState::None => ("no model", egui::Color32::from_rgb(200, 180, 80)),
        ModelState::Loading => ("loading…", egui::Color32::from_rgb(200, 180, 80)),
        ModelState::Ready => ("ready", egui::Color32::from_rgb(110, 200, 110)),
        ModelState::Failed => ("failed", egui::Color32::from_rgb(230, 90, 80)),
    }
}

/// The model folder's name: the loaded one, else the configured one.
fn model_name(params: &ImprovParams, view: &EditorView) -> String {
    let configured = params
        .model_dir
        .read()
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let path = if view.model_state == ModelState::Ready {
        view.message.clone()
    } else {
        configured
    };
    if path.is_empty() {
        return "(passing segments through)".into();
    }
    Path::new(&path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or(path)
}

fn parameters(ui: &mut egui::Ui, p: &ImprovParams, setter: &ParamSetter) {
    fn row<P: Param>(ui: &mut egui::Ui, param: &P, setter: &ParamSetter) {
        ui.label(param.name());
        ui.add(ParamSlider::for_param(param, setter).with_width(SLIDER_WIDTH));
        ui.end_row();
    }
    ui.strong("Parameters");
    ui.horizontal(|ui| {
        ui.label("Preset");
        let current = Preset::current(p);
        egui::ComboBox::from_id_salt("improvnet-preset")
            .selected_text(current.map_or("(your own)", |x| x.name))
            .show_ui(ui, |ui| {
                for preset in PRESETS {
                    let chosen = current.is_some_and(|c| c.name == preset.name);
                    if ui
                        .selectable_label(chosen, preset.name)
                        .on_hover_text(preset.about)
                        .clicked()
                    {
                        apply_preset(p, preset, setter);
                    }
                }
            });
    });
    egui::Grid::new("improvnet-params")
        .num_columns(2)
        .spacing([10.0, 4.0])
        .show(ui, |ui| {
            row(ui, &p.refine, setter);
            row(ui, &p.mode, setter);
            row(ui, &p.genre, setter);
            row(ui, &p.corruption, setter);
            row(ui, &p.fidelity, setter);
            row(ui, &p.rate, setter);
            row(ui, &p.temperature, setter);
            row(ui, &p.context_before, setter);
            row(ui, &p.delay, setter);
            row(ui, &p.sync, setter);
            row(ui, &p.thru, setter);
            row(ui, &p.seed, setter);
            row(ui, &p.align, setter);
            threads_row(ui, p);
        });
}

/// The saved inference thread count (0 = automatic); not a host parameter, it applies when the
/// host next activates the plugin.
fn threads_row(ui: &mut egui::Ui, p: &ImprovParams) {
    let most = inference_threads(0, cores());
    let mut n = p.threads.load(Ordering::Relaxed).min(most as u32);
    ui.label("Model threads");
    let drag = egui::DragValue::new(&mut n)
        .range(0..=most as u32)
        .custom_formatter(move |v, _| {
            if v < 0.5 {
                format!("auto ({most})")
            } else {
                format!("{v:.0}")
            }
        });
    let response = ui.add(drag).on_hover_text(
        "Threads the model computes on (at most the cores less one, so the host keeps a core); \
         applies when the host next activates the plugin",
    );
    if response.changed() {
        p.threads.store(n, Ordering::Relaxed);
    }
    ui.end_row();
}

/// Sets every parameter of `preset`, each as one gesture (a host records it as automation).
pub fn apply_preset(p: &ImprovParams, preset: &Preset, setter: &ParamSetter) {
    fn set<P: Param>(setter: &ParamSetter, param: &P, value: P::Plain) {
        setter.begin_set_parameter(param);
        setter.set_parameter(param, value);
        setter.end_set_parameter(param);
    }
    set(setter, &p.mode, preset.mode);
    set(setter, &p.genre, preset.genre);
    set(setter, &p.corruption, preset.corruption);
    set(setter, &p.fidelity, preset.fidelity);
    set(setter, &p.rate, preset.rate);
    set(setter, &p.temperature, preset.temperature);
    set(setter, &p.context_before, preset.context_before);
    set(setter, &p.delay, preset.delay);
    set(setter, &p.thru, preset.thru);
    set(setter, &p.sync, preset.sync);
    set(setter, &p.align, preset.align);
}

fn status(
    ui: &mut egui::Ui,
    params: &ImprovParams,
    view: &EditorView,
    state: &mut UiState,
) -> Option<EditorAction> {
    ui.strong("Status");
    let ms = |v: u32, any: bool| {
        if any {
            format!("{v} ms")
        } else {
            "–".into()
        }
    };
    let any = view.refined > 0;
    egui::Grid::new("improvnet-status")
        .num_columns(2)
        .spacing([10.0, 4.0])
        .show(ui, |ui| {
            ui.label("Refine latency");
            ui.monospace(format!(
                "last {}, median {}",
                ms(view.last_ms, any),
                ms(view.median_ms, any)
            ));
            ui.end_row();
            ui.label("Refined segments");
            ui.monospace(view.refined.to_string());
            ui.end_row();
            ui.label("Late (original played)");
            ui.monospace(view.late.to_string());
            ui.end_row();
            ui.label("Queue depth");
            let full = if view.queue_full > 0 {
                format!(" ({} dropped: queue full)", view.queue_full)
            } else {
                String::new()
            };
            ui.monospace(format!("{}{full}", view.queue_depth));
            ui.end_row();
            ui.label("Errors / dropped notes");
            ui.monospace(format!("{} / {}", view.errors, view.dropped_notes));
            ui.end_row();
        });
    if !view.message.is_empty() {
        ui.add(egui::Label::new(egui::RichText::new(&view.message).weak().small()).wrap());
    }
    ui.add_space(6.0);
    ui.label("Model folder");
    let edit = state.model_dir.get_or_insert_with(|| {
        params
            .model_dir
            .read()
            .map(|s| s.clone())
            .unwrap_or_default()
    });
    let mut action = None;
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(edit)
                .hint_text("$IMPROVNET_MODEL")
                .desired_width(260.0),
        );
        if ui
            .button("Load")
            .on_hover_text("Save the folder with the project and restart the plugin to load it")
            .clicked()
        {
            if let Ok(mut dir) = params.model_dir.write() {
                *dir = edit.trim().to_string();
            }
            action = Some(EditorAction::ReloadModel);
        }
    });
    action
}

/// Two panes, pitch against time over one segment: as played, and as answered.
fn piano_roll(ui: &mut egui::Ui, last: Option<&LastSegment>) {
    let title = match last {
        Some(s) => format!("Last segment (#{})", s.index),
        None => "Last segment (none yet)".into(),
    };
    ui.strong(title);
    let height = (ui.available_height() - 4.0).clamp(120.0, 600.0);
    let (rect, _) = ui.allocate_exact_size(
        egui::vec2(ui.available_width(), height),
        egui::Sense::hover(),
    );
    let painter = ui.painter_at(rect);
    let gap = 10.0;
    let half = (rect.width() - gap) / 2.0;
    let left = egui::Rect::from_min_size(rect.min, egui::vec2(half, rect.height()));
    let right = egui::Rect::from_min_size(
        egui::pos2(rect.min.x + half + gap, rect.min.y),
        egui::vec2(half, rect.height()),
    );
    let (lo, hi) = pitch_range(last);
    match last {
        Some(s) => {
            let seg_len = SEGMENT_SECONDS * s.sample_rate;
            pane(
                &painter,
                left,
                "played",
                Some((&s.input, INPUT_COLOR)),
                seg_len,
                lo,
                hi,
            );
            match &s.output {
                Some(out) => pane(
                    &painter,
                    right,
                    "answer: refined",
                    Some((out, OUTPUT_COLOR)),
                    seg_len,
                    lo,
                    hi,
                ),
                None => pane(
                    &painter,
                    right,
                    "answer: original",
                    Some((&s.input, ORIGINAL_COLOR)),
                    seg_len,
                    lo,
                    hi,
                ),
            }
        }
        None => {
            pane(&painter, left, "played", None, 1.0, lo, hi);
            pane(&painter, right, "answer", None, 1.0, lo, hi);
        }
    }
}

/// The pitches shown: every note of both panes, at least two octaves.
fn pitch_range(last: Option<&LastSegment>) -> (u8, u8) {
    let mut lo = u8::MAX;
    let mut hi = 0u8;
    if let Some(s) = last {
        let out = s.output.as_ref().map(|o| o.as_slice()).unwrap_or(&[]);
        for n in s.input.as_slice().iter().chain(out) {
            lo = lo.min(n.pitch);
            hi = hi.max(n.pitch);
        }
    }
    if lo > hi {
        return (48, 84);
    }
    let (lo, hi) = (lo.saturating_sub(2), hi.saturating_add(2).min(127));
    if hi - lo >= 24 {
        return (lo, hi);
    }
    let mid = (u16::from(lo) + u16::from(hi)) / 2;
    let lo = mid.saturating_sub(12).min(127 - 24) as u8;
    (lo, lo + 24)
}

fn pane(
    painter: &egui::Painter,
    rect: egui::Rect,
    label: &str,
    notes: Option<(&NoteBuf, egui::Color32)>,
    seg_len: f32,
    lo: u8,
    hi: u8,
) {
    let visuals = painter.ctx().global_style().visuals.clone();
    painter.rect_filled(rect, 3.0, visuals.extreme_bg_color);
    let rows = f32::from(hi - lo + 1);
    let row_h = rect.height() / rows;
    // Black-key rows shaded, C rows marked.
    for p in lo..=hi {
        let y = rect.bottom() - f32::from(p - lo + 1) * row_h;
        let row =
            egui::Rect::from_min_size(egui::pos2(rect.left(), y), egui::vec2(rect.width(), row_h));
        if matches!(p % 12, 1 | 3 | 6 | 8 | 10) {
            painter.rect_filled(row, 0.0, visuals.faint_bg_color);
        }
        if p % 12 == 0 {
            painter.line_segment(
                [
                    egui::pos2(rect.left(), row.bottom()),
                    egui::pos2(rect.right(), row.bottom()),
                ],
                egui::Stroke::new(1.0, visuals.widgets.noninteractive.bg_stroke.color),
            );
        }
    }
    // One line per second.
    for s in 1..(SEGMENT_SECONDS as u32) {
        let x = rect.left() + rect.width() * s as f32 / SEGMENT_SECONDS;
        painter.line_segment(
            [egui::pos2(x, rect.top()), egui::pos2(x, rect.bottom())],
            egui::Stroke::new(1.0, visuals.widgets.noninteractive.bg_stroke.color),
        );
    }
    if let Some((buf, color)) = notes {
        let x = |samples: f32| rect.left() + rect.width() * (samples / seg_len).clamp(0.0, 1.0);
        for n in buf.as_slice() {
            if n.pitch < lo || n.pitch > hi {
                continue;
            }
            let start = n.onset as f32;
            let end = if n.dur == OPEN {
                seg_len
            } else {
                start + n.dur as f32
            };
            let y = rect.bottom() - f32::from(n.pitch - lo + 1) * row_h;
            let note = egui::Rect::from_min_max(
                egui::pos2(x(start), y + 0.5),
                egui::pos2(x(end).max(x(start) + 2.0), y + row_h - 0.5),
            );
            let alpha = 110 + u32::from(n.velocity.min(127)) as u8;
            let fill =
                egui::Color32::from_rgba_unmultiplied(color.r(), color.g(), color.b(), alpha);
            painter.rect_filled(note, 1.0, fill);
        }
    }
    painter.text(
        rect.left_top() + egui::vec2(6.0, 4.0),
        egui::Align2::LEFT_TOP,
        label,
        egui::FontId::proportional(12.0),
        visuals.weak_text_color(),
    );
    painter.rect_stroke(
        rect,
        3.0,
        egui::Stroke::new(1.0, visuals.widgets.noninteractive.bg_stroke.color),
        egui::StrokeKind::Inside,
    );
}

/// The egui app inside the window.
struct App {
    params: Arc<ImprovParams>,
    status: Arc<Status>,
    scale: Arc<AtomicU32>,
    gui: Option<GuiContext>,
    state: UiState,
}

impl NiceEguiApp for App {
    fn build(
        &mut self,
        _egui_ctx: egui::Context,
        gui: GuiContext,
        _frame: &mut nice_plug_egui::Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        self.gui = Some(gui);
        self.state = UiState::default();
        Ok(())
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut nice_plug_egui::Frame) {
        let Some(gui) = self.gui.as_ref() else {
            return;
        };
        let setter = gui.param_setter();
        let view = EditorView::from_status(&self.status);
        if draw(ui, &self.params, &view, &mut self.state, &setter).is_some() {
            gui.request_restart();
        }
        ui.ctx().request_repaint_after(REFRESH);
    }

    fn resized(&mut self, size: WindowSize) {
        self.scale
            .store((size.scale_factor as f32).to_bits(), Ordering::Relaxed);
        if let Ok(mut saved) = self.params.editor_size.write() {
            *saved = EditorSize {
                width: size.logical.width.round().max(1.0) as u32,
                height: size.logical.height.round().max(1.0) as u32,
            };
        }
    }

    fn editor_closed(&mut self) {
        self.gui = None;
    }
}

/// The plugin's [`Editor`]: an egui window opened at the size saved with the project.
pub struct ImprovEditor {
    params: Arc<ImprovParams>,
    status: Arc<Status>,
    /// The last scale factor the window reported (`f32` bits).
    scale: Arc<AtomicU32>,
    repaint: RepaintNotifier,
}

impl ImprovEditor {
    pub fn new(params: Arc<ImprovParams>, status: Arc<Status>) -> Self {
        Self {
            params,
            status,
            scale: Arc::new(AtomicU32::new(1.0f32.to_bits())),
            repaint: RepaintNotifier::new(),
        }
    }

    /// The saved size in logical pixels (read again at every open, so a restored project's size
    /// applies).
    pub fn logical_size(&self) -> LogicalSize<f64> {
        let s = self
            .params
            .editor_size
            .read()
            .map(|s| *s)
            .unwrap_or_default();
        LogicalSize::new(
            f64::from(s.width.max(EditorSize::MIN.width)),
            f64::from(s.height.max(EditorSize::MIN.height)),
        )
    }

    fn settings() -> EguiNiceSettings {
        let min = LogicalSize::new(EditorSize::MIN.width as f32, EditorSize::MIN.height as f32);
        EguiNiceSettings::new()
            .with_tile("ImprovNet")
            .with_resize_hint(ResizeHint::RESIZABLE.with_min_logical_size(min))
    }
}

impl Editor for ImprovEditor {
    type Handle = EguiEditorHandle;

    fn spawn(
        &self,
        parent: Option<ParentWindowHandle>,
        wait_for_parent: bool,
        fallback_scale_factor: Option<f64>,
        gui_context: GuiContext,
        host: Option<HostMethods>,
    ) -> Result<SpawnedEditor<Self::Handle>, Box<dyn Error>> {
        let state = EguiEditorState::from_size(Size::Logical(self.logical_size()), 1.0);
        let app = App {
            params: self.params.clone(),
            status: self.status.clone(),
            scale: self.scale.clone(),
            gui: None,
            state: UiState::default(),
        };
        let inner = create_egui_editor(state, self.repaint.clone(), Self::settings(), app)
            .ok_or("cannot create the egui editor")?;
        inner.spawn(
            parent,
            wait_for_parent,
            fallback_scale_factor,
            gui_context,
            host,
        )
    }

    fn size(&self) -> NativeSize<u32> {
        let scale = f64::from(f32::from_bits(self.scale.load(Ordering::Relaxed)));
        NativeSize::from_size(Size::Logical(self.logical_size()), scale)
    }

    fn resize_hint(&self) -> ResizeHint {
        Self::settings().resize_hint
    }

    unsafe fn assume_standalone_in_process(&self) {
        // Safety: the same contract as this method's (only a standalone build calls it).
        unsafe { nice_plug_egui::baseview::assume_standalone_in_process() }
    }
}

/// A GUI context without a host: parameter changes go straight into the parameters and
/// nothing else happens. For drawing the editor headless (tests, the screenshot example).
pub struct Hostless;

impl GuiContextInner for Hostless {
    fn plugin_api(&self) -> PluginApi {
        PluginApi::Clap
    }
    unsafe fn raw_begin_set_parameter(&self, _param: nice_plug::params::internals::ParamPtr) {}
    unsafe fn raw_set_parameter_normalized(
        &self,
        param: nice_plug::params::internals::ParamPtr,
        normalized: f32,
    ) {
        // Safety: the pointer comes from a live parameter of the parameters the caller owns.
        unsafe {
            param._internal_set_normalized_value(normalized);
        }
    }
    unsafe fn raw_end_set_parameter(&self, _param: nice_plug::params::internals::ParamPtr) {}
    fn get_state(&self) -> PluginState {
        PluginState {
            version: String::new(),
            params: Default::default(),
            fields: Default::default(),
        }
    }
    fn set_state(&self, _state: PluginState) {}
    fn request_restart(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::notes::SampleNote;
    use crate::plugin::ImprovNet;

    fn executor() -> AsyncExecutor<ImprovNet> {
        AsyncExecutor::new(Arc::new(|_| ()), Arc::new(|_| ()))
    }

    #[test]
    fn the_plugin_has_an_editor_at_the_saved_size() {
        let mut plugin = ImprovNet::default();
        let editor = plugin.editor(executor()).expect("an editor");
        let d = EditorSize::DEFAULT;
        assert_eq!(editor.size(), NativeSize::new(d.width, d.height));
        assert!(editor.resize_hint().can_resize);
        // A project restored after the editor was created opens at its own size...
        *plugin.params.editor_size.write().unwrap() = EditorSize {
            width: 900,
            height: 640,
        };
        assert_eq!(editor.size(), NativeSize::new(900, 640));
        // ...but never below the smallest usable one.
        *plugin.params.editor_size.write().unwrap() = EditorSize {
            width: 10,
            height: 10,
        };
        let m = EditorSize::MIN;
        assert_eq!(editor.size(), NativeSize::new(m.width, m.height));
    }

    #[test]
    fn the_editor_size_is_saved_with_the_project() {
        let params = ImprovParams::default();
        *params.editor_size.write().unwrap() = EditorSize {
            width: 812,
            height: 555,
        };
        let fields = params.serialize_fields();
        let saved = fields
            .get("editor-state")
            .expect("persisted as editor-state");
        let restored = ImprovParams::default();
        restored.deserialize_fields(&fields);
        assert_eq!(
            *restored.editor_size.read().unwrap(),
            EditorSize {
                width: 812,
                height: 555
            },
            "{saved}"
        );
        assert!(fields.contains_key("model_dir"));
    }

    #[test]
    fn the_ui_draws_headless_with_and_without_a_segment() {
        let params = ImprovParams::default();
        let status = Status::default();
        let gui = GuiContext::new(Arc::new(Hostless));
        let setter = gui.param_setter();
        let mut state = UiState::default();
        let ctx = egui::Context::default();
        let input = NoteBuf::from_notes((0..12).map(|i| SampleNote {
            pitch: 60 + (i % 7) as u8,
            velocity: 90,
            onset: i * 20_000,
            dur: if i == 11 { OPEN } else { 15_000 },
        }));
        for last in [
            None,
            Some(LastSegment {
                index: 3,
                sample_rate: 48_000.0,
                input,
                output: None,
            }),
            Some(LastSegment {
                index: 4,
                sample_rate: 48_000.0,
                input,
                output: Some(input),
            }),
        ] {
            let mut view = EditorView::from_status(&status);
            view.last = last;
            for _ in 0..2 {
                let mut out = ctx.run_ui(egui::RawInput::default(), |ui| {
                    assert_eq!(draw(ui, &params, &view, &mut state, &setter), None);
                });
                assert!(!out.shapes.is_empty());
                // No renderer here to take the font atlas.
                out.textures_delta.clear();
            }
        }
        assert_eq!(state.model_dir.as_deref(), Some(""));
    }

    #[test]
    fn each_factory_preset_sets_what_it_says() {
        let params = ImprovParams::default();
        let gui = GuiContext::new(Arc::new(Hostless));
        let setter = gui.param_setter();
        for preset in PRESETS {
            apply_preset(&params, preset, &setter);
            assert_eq!(Preset::current(&params), Some(preset), "{}", preset.name);
            let s = params.snapshot();
            assert_eq!((s.mode, s.delay), (preset.mode, preset.delay as u32));
            // (A value goes through its normalised form: 0.6 comes back as 0.59999996.)
            assert!((s.rate - preset.rate).abs() < 1e-4, "{}", s.rate);
        }
        // Any other value is the musician's own setting.
        setter.set_parameter(&params.temperature, 1.37);
        assert_eq!(Preset::current(&params), None);
    }

    #[test]
    fn pitch_range_covers_the_notes_and_two_octaves() {
        assert_eq!(pitch_range(None), (48, 84));
        let one = NoteBuf::from_notes([SampleNote {
            pitch: 126,
            velocity: 1,
            onset: 0,
            dur: 1,
        }]);
        let s = LastSegment {
            index: 0,
            sample_rate: 48_000.0,
            input: one,
            output: None,
        };
        let (lo, hi) = pitch_range(Some(&s));
        assert!(
            lo <= 126 && (126..=127).contains(&hi) && hi - lo >= 24,
            "{lo} {hi}"
        );
    }
}
