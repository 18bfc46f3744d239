//! Parity with the PyTorch reference (fixtures made by `scripts/make_model_parity.py`).

use candle_core::{DType, Device, Tensor};
use improvnet::model::{
    classifier::GenreClassifier, Config, GenerateOptions, ImprovNetModel, SamplingParams,
};
use std::collections::HashMap;
use std::path::PathBuf;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/model")
}

fn io() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(data().join("tiny_io.safetensors"), &Device::Cpu).unwrap()
}

fn ids(t: &Tensor) -> Tensor {
    t.to_dtype(DType::U32).unwrap()
}

/// All values of a tensor, flattened, as f32.
fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Largest absolute difference between two tensors' values.
fn tensor_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs_diff(&values(a), &values(b))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn model() -> ImprovNetModel {
    ImprovNetModel::load(&data().join("tiny_seq2seq"), &Device::Cpu).unwrap()
}

#[test]
fn full_forward_matches_pytorch() {
    let io = io();
    let m = model();
    let (enc_ids, enc_mask, dec_ids) = (
        ids(&io["enc_ids"]),
        ids(&io["enc_mask"]),
        ids(&io["dec_ids"]),
    );
    let enc = m.encode(&enc_ids, &enc_mask).unwrap();
    let d = tensor_diff(&enc, &io["enc_hidden"]);
    println!("encoder hidden max abs diff {d:e}");
    assert!(d < 1e-4, "encoder hidden diff {d}");
    let logits = m.forward(&enc_ids, &enc_mask, &dec_ids).unwrap();
    let d = tensor_diff(&logits, &io["logits"]);
    println!("full-forward logits max abs diff {d:e}");
    assert!(d < 1e-4, "logits diff {d}");
}

#[test]
fn incremental_kv_cache_matches_pytorch() {
    let io = io();
    let m = model();
    let (enc_ids, enc_mask) = (ids(&io["enc_ids"]), ids(&io["enc_mask"]));
    let enc = m.encode(&enc_ids, &enc_mask).unwrap();
    let dec: Vec<Vec<u32>> = ids(&io["dec_ids"]).to_vec2().unwrap();
    let mask: Vec<Vec<u32>> = enc_mask.to_vec2().unwrap();
    let expected: Vec<Vec<Vec<f32>>> = io["logits"].to_vec3().unwrap();
    let mut worst = 0.0f32;
    for b in 0..dec.len() {
        let mb: Vec<bool> = mask[b].iter().map(|&v| v == 1).collect();
        let got = m
            .incremental_logits(&enc.get(b).unwrap(), &mb, &dec[b])
            .unwrap();
        for (p, row) in got.iter().enumerate() {
            worst = worst.max(max_abs_diff(row, &expected[b][p]));
        }
    }
    println!("incremental logits max abs diff {worst:e}");
    assert!(worst < 1e-4, "incremental logits diff {worst}");
}

#[test]
fn greedy_generation_matches_pytorch() {
    let io = io();
    let m = model();
    let enc: Vec<Vec<u32>> = ids(&io["enc_ids"]).to_vec2().unwrap();
    let mask: Vec<Vec<i64>> = io["enc_mask"].to_vec2().unwrap();
    let expected: Vec<Vec<i64>> = io["greedy"].to_vec2().unwrap();
    let opts = GenerateOptions {
        sampling: SamplingParams::greedy(),
        max_len: 32,
    };
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    for b in 0..enc.len() {
        let n = mask[b].iter().filter(|&&v| v == 1).count();
        let got = m.generate(&enc[b][..n], &opts, &mut [], &mut rng).unwrap();
        let want: Vec<u32> = expected[b]
            .iter()
            .filter(|&&v| v >= 0)
            .map(|&v| v as u32)
            .collect();
        assert_eq!(got, want, "row {b}");
    }
}

#[test]
fn classifier_matches_pytorch() {
    let io = io();
    let c = GenreClassifier::load(&data().join("tiny_classifier"), &Device::Cpu).unwrap();
    let x = ids(&io["cls_ids"]);
    let logits = c.forward(&x, &x.ones_like().unwrap()).unwrap();
    let d = tensor_diff(&logits, &io["cls_logits"]);
    println!("classifier logits max abs diff {d:e}");
    assert!(d < 1e-4, "classifier diff {d}");
    let p = c
        .predict_proba(&x.get(0).unwrap().to_vec1::<u32>().unwrap())
        .unwrap();
    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn save_load_round_trip_gives_same_logits() {
    let io = io();
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    m.save(dir.path()).unwrap();
    let m2 = ImprovNetModel::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(m.config, m2.config);
    assert_eq!(m.num_parameters(), m2.num_parameters());
    let (e, k, d) = (
        ids(&io["enc_ids"]),
        ids(&io["enc_mask"]),
        ids(&io["dec_ids"]),
    );
    let a = values(&m.forward(&e, &k, &d).unwrap());
    let b = values(&m2.forward(&e, &k, &d).unwrap());
    assert_eq!(a, b);
    // HF layout: both LM-head bias names, encoder pooler, nested config sections.
    let st =
        candle_core::safetensors::load(dir.path().join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(st.contains_key("decoder.cls.predictions.bias"));
    assert!(st.contains_key("decoder.cls.predictions.decoder.bias"));
    assert!(st.contains_key("encoder.pooler.dense.weight"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(json["decoder"]["is_decoder"], true);
    assert_eq!(json["decoder"]["add_cross_attention"], true);
    assert_eq!(json["encoder"]["hidden_size"], 48);

    let c = GenreClassifier::load(&data().join("tiny_classifier"), &Device::Cpu).unwrap();
    c.save(&dir.path().join("clf")).unwrap();
    let c2 = GenreClassifier::load(&dir.path().join("clf"), &Device::Cpu).unwrap();
    let x = ids(&io["cls_ids"])
        .get(0)
        .unwrap()
        .to_vec1::<u32>()
        .unwrap();
    assert_eq!(c.predict_proba(&x).unwrap(), c2.predict_proba(&x).unwrap());
}

#[test]
fn base_has_the_spec_parameter_count() {
    let m = ImprovNetModel::from_backend(
        &Config::base(),
        Box::new(improvnet::model::weights::Zeros),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(m.num_parameters(), 93_662_466);
    let enc: usize = m
        .named_tensors()
        .iter()
        .filter(|(n, _)| n.starts_with("encoder."))
        .map(|(_, t)| t.elem_count())
        .sum();
    assert_eq!(enc, 40_322_560);
    let c = GenreClassifier::from_backend(
        &GenreClassifier::base_config(),
        Box::new(improvnet::model::weights::Zeros),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(c.num_parameters(), 39_799_811);
}

#[test]
fn single_bias_checkpoint_loads() {
    // A 4.x-style checkpoint with only `cls.predictions.bias` (or only the decoder.bias).
    let m = model();
    for drop in [
        "decoder.cls.predictions.decoder.bias",
        "decoder.cls.predictions.bias",
    ] {
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let p = dir.path().join("model.safetensors");
        let mut st = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
        st.remove(drop).unwrap();
        candle_core::safetensors::save(&st, &p).unwrap();
        let m2 = ImprovNetModel::load(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(m2.num_parameters(), m.num_parameters());
    }
}

#[test]
fn errors_name_the_file_the_tensor_and_the_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let e = ImprovNetModel::load(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("config.json") && e.contains("save_pretrained"),
        "{e}"
    );
    assert!(e.contains("pytorch_model.bin is not supported"), "{e}");

    let m = model();
    m.save(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let e = ImprovNetModel::load(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("not found"),
        "{e}"
    );

    // Wrong shape: a config that asks for a bigger FFN.
    m.save(dir.path()).unwrap();
    let mut cfg = m.config.clone();
    cfg.encoder.intermediate_size = 100;
    std::fs::write(dir.path().join("config.json"), cfg.to_json_string()).unwrap();
    let e = ImprovNetModel::load(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    println!("{e}");
    assert!(
        e.contains("encoder.encoder.layer.0.intermediate.dense.weight"),
        "{e}"
    );
    assert!(e.contains("[96, 48]") && e.contains("[100, 48]"), "{e}");

    // Missing tensor.
    m.save(dir.path()).unwrap();
    let p = dir.path().join("model.safetensors");
    let mut st = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
    st.remove("decoder.bert.encoder.layer.1.crossattention.self.key.bias");
    candle_core::safetensors::save(&st, &p).unwrap();
    let e = ImprovNetModel::load(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    println!("{e}");
    assert!(
        e.contains("decoder.bert.encoder.layer.1.crossattention.self.key.bias"),
        "{e}"
    );
    assert!(e.contains("missing"), "{e}");
}

#[test]
fn config_reads_hf_json_and_presets_are_valid() {
    let c = Config::from_file(&data().join("tiny_seq2seq/config.json")).unwrap();
    assert_eq!(c.encoder.num_hidden_layers, 2);
    assert_eq!(c.decoder.max_position_embeddings, 512);
    assert!(c.decoder.is_decoder && c.decoder.add_cross_attention);
    assert!(!c.decoder.tie_word_embeddings);
    let back = Config::from_json_str(&c.to_json_string()).unwrap();
    assert_eq!(c, back);
    // Absent fields default, unknown fields are ignored.
    let min = Config::from_json_str(r#"{"encoder": {"foo": 1}, "decoder": {"is_decoder": true, "add_cross_attention": true}, "bar": 2}"#).unwrap();
    assert_eq!(min.encoder.hidden_size, 512);
    assert_eq!(min.decoder_start_token_id, Some(2303));
    Config::base().validate().unwrap();
    Config::small().validate().unwrap();
}
