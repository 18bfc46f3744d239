//! The shipped model built into the plugin binary (cargo feature `embed-model`), so a bundle
//! copied into a DAW's plugin folder refines without any other file.

/// Where the built-in model came from, for the editor and error messages.
pub const LABEL: &str = "built-in improvnet-small";

#[cfg(feature = "embed-model")]
const CONFIG: &str = include_str!("../../models/improvnet-small/config.json");
#[cfg(feature = "embed-model")]
const WEIGHTS: &[u8] = include_bytes!("../../models/improvnet-small/model.safetensors");

/// The built-in model's `config.json` and safetensors bytes, when this build has one.
pub fn model_bytes() -> Option<(&'static str, &'static [u8])> {
    #[cfg(feature = "embed-model")]
    {
        Some((CONFIG, WEIGHTS))
    }
    #[cfg(not(feature = "embed-model"))]
    {
        None
    }
}

#[cfg(all(test, feature = "embed-model"))]
mod tests {
    use super::*;
    use crate::plugin::worker::{load_model, ModelSource};

    #[test]
    fn the_built_in_model_is_the_shipped_one() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/improvnet-small");
        let built_in = ModelSource::BuiltIn
            .load()
            .expect("the built-in model loads");
        let shipped = load_model(&dir).expect("the shipped model loads");
        assert_eq!(built_in.num_parameters(), shipped.num_parameters());
        let (_, bytes) = model_bytes().expect("embedded");
        assert_eq!(
            bytes,
            std::fs::read(dir.join("model.safetensors"))
                .unwrap()
                .as_slice()
        );
    }
}
