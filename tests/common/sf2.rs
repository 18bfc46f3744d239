//! A SoundFont the tests build themselves, so rendering is tested without any installed one.
#![allow(dead_code)]

/// Sample rate of the test SoundFont's one sample: 100 samples per period at 440 Hz, so the
/// loop is seamless.
const SF_RATE: u32 = 44_000;

fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = id.to_vec();
    v.extend((body.len() as u32).to_le_bytes());
    v.extend(body);
    if body.len() % 2 == 1 {
        v.push(0);
    }
    v
}

fn list(kind: &[u8; 4], chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut body = kind.to_vec();
    for c in chunks {
        body.extend(c);
    }
    chunk(b"LIST", &body)
}

fn name20(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.resize(20, 0);
    v
}

fn u16s(xs: &[u16]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A minimal, valid SoundFont 2: one preset (bank 0, program 0) → one instrument → one looped
/// sine sample at MIDI pitch 69.
pub fn sine_soundfont() -> Vec<u8> {
    let n = 4400u32;
    let mut pcm: Vec<u8> = (0..n)
        .flat_map(|i| {
            let x = (2.0 * std::f64::consts::PI * i as f64 / 100.0).sin();
            ((x * 12_000.0) as i16).to_le_bytes()
        })
        .collect();
    pcm.extend(vec![0u8; 46 * 2]); // the 46 zero samples the format requires after each sample
    let info = list(
        b"INFO",
        &[
            chunk(b"ifil", &u16s(&[2, 1])),
            chunk(b"isng", b"EMU8000\0"),
            chunk(b"INAM", b"test sine\0"),
        ],
    );
    let sdta = list(b"sdta", &[chunk(b"smpl", &pcm)]);
    let phdr = |name: &str, preset: u16, bag: u16| {
        let mut v = name20(name);
        v.extend(u16s(&[preset, 0, bag]));
        v.extend([0u8; 12]);
        v
    };
    let inst = |name: &str, bag: u16| {
        let mut v = name20(name);
        v.extend(u16s(&[bag]));
        v
    };
    let mut shdr = name20("sine");
    for x in [0, n, 0, n, SF_RATE] {
        shdr.extend(x.to_le_bytes());
    }
    shdr.extend([69u8, 0]);
    shdr.extend(u16s(&[0, 1]));
    let mut eos = name20("EOS");
    eos.extend([0u8; 26]);
    let pdta = list(
        b"pdta",
        &[
            chunk(b"phdr", &[phdr("Piano", 0, 0), phdr("EOP", 0, 1)].concat()),
            chunk(b"pbag", &u16s(&[0, 0, 1, 0])),
            chunk(b"pmod", &[0u8; 10]),
            chunk(b"pgen", &u16s(&[41, 0, 0, 0])), // instrument 0
            chunk(b"inst", &[inst("Sine", 0), inst("EOI", 1)].concat()),
            chunk(b"ibag", &u16s(&[0, 0, 2, 0])),
            chunk(b"imod", &[0u8; 10]),
            chunk(b"igen", &u16s(&[54, 1, 53, 0, 0, 0])), // loop continuously; sample 0
            chunk(b"shdr", &[shdr, eos].concat()),
        ],
    );
    let mut body = b"sfbk".to_vec();
    body.extend(info);
    body.extend(sdta);
    body.extend(pdta);
    chunk(b"RIFF", &body)
}
