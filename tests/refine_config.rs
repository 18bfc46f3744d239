//! YAML recipes: our configs equal the built-in defaults, an original config file runs as it is,
//! unknown keys warn, wrong types and names are errors naming the key and its line.
use std::path::{Path, PathBuf};

use improvnet::corrupt::{Corruption, CorruptionChoice};
use improvnet::refine::config::{load_config, parse_config};
use improvnet::refine::{PassSpec, RefineError, Settings};
use improvnet::tokens::Genre;

fn config(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(name)
}

#[test]
fn shipped_configs_equal_the_defaults() {
    for (file, defaults) in [
        ("style_transfer.yaml", Settings::style_transfer()),
        ("harmony.yaml", Settings::harmony()),
        ("continuation.yaml", Settings::continuation()),
        ("infilling.yaml", Settings::infilling()),
    ] {
        // Read over deliberately wrong base values: every value must come from the file.
        let mut base = defaults.clone();
        base.refine.temperature = 0.123;
        base.refine.context_before = 17;
        base.refine.passes = vec![PassSpec::new(0.3, Corruption::Fragmentation)];
        base.novel_peaks_pct = 0.77;
        let loaded = load_config(&config(file), base).unwrap();
        assert!(loaded.warnings.is_empty(), "{file}: {:?}", loaded.warnings);
        assert_eq!(
            loaded.settings.refine.temperature, defaults.refine.temperature,
            "{file}"
        );
        assert_eq!(
            loaded.settings.refine.context_before, defaults.refine.context_before,
            "{file}"
        );
        assert_eq!(
            loaded.settings.refine.passes, defaults.refine.passes,
            "{file}"
        );
        assert_eq!(
            loaded.settings.novel_peaks_pct, defaults.novel_peaks_pct,
            "{file}"
        );
        assert_eq!(loaded.settings, defaults, "{file}");
    }
}

/// The form-keeping jazz recipe is the style-transfer defaults with ten skyline passes at rate 1.0
/// and half the section-opening segments kept (the model card's best-measured lever).
#[test]
fn the_skyline_recipe_differs_from_style_transfer_only_in_passes_and_preservation() {
    let mut base = Settings::harmony();
    base.novel_peaks_pct = 0.77;
    let loaded = load_config(&config("jazz_skyline.yaml"), base).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let mut expected = Settings::style_transfer();
    expected.refine.passes = vec![PassSpec::new(1.0, Corruption::Skyline); 10];
    expected.novel_peaks_pct = 0.5;
    assert_eq!(loaded.settings, expected);
}

/// The original's `config_style_transfer.yaml`, blocks and cluster paths as they are.
const ORIGINAL: &str = r#"
model:
  encoder_max_sequence_length: 2048
  decoder_max_sequence_length: 512
  encoder_num_layers: 12
classifier_model:
  encoder_max_sequence_length: 1024
training:
  pretraining:
    epochs: 500
    batch_size: 4 #24
raw_data:
  raw_data_folders:
    pre_training:
      folder_paths: ['/import/c4dm-datasets/aria/transcriptions/atepp']
      genre: classical
  build_dataset: True
  artifact_folder: artifacts
generation:
  convert_from: classical
  convert_to: jazz # Choose from ['jazz', 'classical'].
  midi_file_path: "/homes/kb658/improvnet/input/debussy-clair-de-lune.mid"
  wav_file_path: "/homes/kb658/improvnet/input/debussy-clair-de-lune_original.wav"
  novel_peaks_pct: 0.05 # Percentage of novel peaks to be preserved.
  temperature: 1.0 # Temperature for sampling.
  context_before: 5
  context_after: 5
  t_segment_start: 2
  t_segment_stop: -1
  end_original: True
  write_intermediate_passes: True
  passes:
    pass_1:
      corruption_rate: 1.0
      corruption_type: skyline
    pass_2:
      corruption_rate: 1.0
      corruption_type: skyline
    pass_3:
      corruption_rate: 0.5
      corruption_type: pitch_velocity_mask
    pass_4:
      corruption_rate: 0.5
      corruption_type: incorrect_transposition
    pass_5:
      corruption_rate: 0.5
      corruption_type: permute_pitches
    pass_6:
      corruption_rate: 0.5
      corruption_type: note_modification
    pass_7:
      corruption_rate: 1.0
      corruption_type: onset_duration_mask
    pass_8:
      corruption_rate: 0.5
      corruption_type: fragmentation
    pass_9:
      corruption_rate: 0.25
      corruption_type: whole_mask
    pass_10:
      corruption_rate: 0.25
      corruption_type: random
"#;

#[test]
fn an_original_config_runs_unchanged() {
    let loaded = parse_config(ORIGINAL, Path::new("orig.yaml"), Settings::harmony()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let s = loaded.settings;
    let st = Settings::style_transfer();
    assert_eq!(s.refine.passes, st.refine.passes);
    assert_eq!(s.refine.passes[9].corruption, CorruptionChoice::Random);
    assert_eq!(s.refine.target, Genre::Jazz);
    assert_eq!(s.refine.t_segment_start, 2);
    assert_eq!(s.refine.t_segment_stop, None);
    assert!(s.refine.end_original);
    assert_eq!(
        s.midi_file_path.as_deref(),
        Some(Path::new(
            "/homes/kb658/improvnet/input/debussy-clair-de-lune.mid"
        ))
    );
}

fn error_of(text: &str) -> String {
    match parse_config(text, Path::new("my.yaml"), Settings::style_transfer()) {
        Err(e @ RefineError::Config { .. }) => e.to_string(),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn wrong_types_name_the_key_and_line() {
    let msg = error_of("generation:\n  convert_to: jazz\n  temperature: hot\n");
    assert!(msg.starts_with("my.yaml:"), "{msg}");
    assert!(msg.contains("generation.temperature"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");

    let msg = error_of(
        "generation:\n  passes:\n    pass_1:\n      corruption_rate: high\n      corruption_type: skyline\n",
    );
    assert!(
        msg.contains("generation.passes.pass_1.corruption_rate") && msg.contains("line 4"),
        "{msg}"
    );

    let msg = error_of("generation:\n  context_before: -2\n");
    assert!(
        msg.contains("generation.context_before") && msg.contains("line 2"),
        "{msg}"
    );

    let msg = error_of("generation:\n  end_original: maybe\n");
    assert!(
        msg.contains("generation.end_original") && msg.contains("line 2"),
        "{msg}"
    );
}

#[test]
fn bad_names_and_values_are_errors_with_lines() {
    let msg = error_of(
        "generation:\n  passes:\n    pass_1:\n      corruption_rate: 1.0\n      corruption_type: skyfall\n",
    );
    assert!(
        msg.contains("corruption_type") && msg.contains("skyfall") && msg.contains("line 5"),
        "{msg}"
    );
    assert!(
        msg.contains("whole_mask") && msg.contains("random"),
        "lists the valid names: {msg}"
    );

    let msg = error_of("generation:\n  convert_to: funk\n");
    assert!(
        msg.contains("convert_to") && msg.contains("funk") && msg.contains("line 2"),
        "{msg}"
    );

    let msg = error_of(
        "generation:\n  passes:\n    pass_1:\n      corruption_rate: 1.5\n      corruption_type: skyline\n",
    );
    assert!(
        msg.contains("corruption_rate") && msg.contains("line 4"),
        "{msg}"
    );

    let msg = error_of("generation:\n  temperature: 0\n");
    assert!(
        msg.contains("temperature") && msg.contains("line 2"),
        "{msg}"
    );

    let msg = error_of(
        "generation:\n  passes:\n    pass_1:\n      corruption_rate: 1.0\n      corruption_type: skyline\n    pass_3:\n      corruption_rate: 1.0\n      corruption_type: skyline\n",
    );
    assert!(msg.contains("pass_2 is missing"), "{msg}");

    let msg = error_of("generation: [1, 2\n");
    assert!(
        msg.contains("line"),
        "syntax errors have a place too: {msg}"
    );
}

#[test]
fn unknown_keys_warn_and_passes_sort_by_number() {
    let text = "extra_block: 1\ngeneration:\n  temprature: 0.5\n  passes:\n".to_string()
        + &(1..=11)
            .map(|i| {
                format!(
                    "    pass_{i}:\n      corruption_rate: {}\n      corruption_type: whole_mask\n      colour: red\n",
                    i as f64 / 20.0
                )
            })
            .collect::<String>();
    let loaded = parse_config(&text, Path::new("w.yaml"), Settings::style_transfer()).unwrap();
    let w = loaded.warnings.join("\n");
    assert!(w.contains("w.yaml: unknown key `extra_block`"), "{w}");
    assert!(w.contains("unknown key `generation.temprature`"), "{w}");
    assert!(w.contains("generation.passes.pass_1.colour"), "{w}");
    let rates: Vec<f64> = loaded
        .settings
        .refine
        .passes
        .iter()
        .map(|p| p.rate)
        .collect();
    assert_eq!(rates, (1..=11).map(|i| i as f64 / 20.0).collect::<Vec<_>>());
    // The misspelt key changed nothing.
    assert_eq!(loaded.settings.refine.temperature, 1.0);
}

#[test]
fn missing_file_names_it() {
    let err =
        load_config(Path::new("/nonexistent/r.yaml"), Settings::style_transfer()).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/r.yaml"), "{err}");
}
