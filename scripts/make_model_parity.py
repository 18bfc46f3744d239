"""Build tiny random reference models and the parity fixtures read by tests/model_parity.rs.

Run once with the PyTorch venv (CI never runs it; the tests read the committed files):

    /work/pyenv/bin/python scripts/make_model_parity.py

Writes
  tests/data/model/tiny_seq2seq/{config.json,model.safetensors}   EncoderDecoderModel (stored f16)
  tests/data/model/tiny_classifier/{config.json,model.safetensors} BertForSequenceClassification (f32)
  tests/data/model/tiny_io.safetensors                              inputs and expected outputs
"""
import os

import torch
from safetensors.torch import save_file
from transformers import (BertConfig, BertForSequenceClassification, EncoderDecoderConfig,
                          EncoderDecoderModel)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "model")
VOCAB, PAD, BOS, EOS = 2306, 0, 2303, 2304
torch.manual_seed(1234)


def noise_1d(model, scale=0.2):
    # transformers initialises biases to 0 and LayerNorm to (1, 0): a loader that drops them would
    # still match. Perturb every 1-D tensor so they matter.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * scale)


def bert(d, layers, heads, ffn, positions, **kw):
    return BertConfig(vocab_size=VOCAB, hidden_size=d, num_hidden_layers=layers,
                      num_attention_heads=heads, intermediate_size=ffn,
                      max_position_embeddings=positions, pad_token_id=PAD,
                      initializer_range=0.15, **kw)


# ---------------------------------------------------------------- seq2seq
enc = bert(48, 2, 4, 96, 2048)
dec = bert(48, 2, 4, 96, 512, is_decoder=True, add_cross_attention=True,
           tie_word_embeddings=False)
cfg = EncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
cfg.tie_word_embeddings = False
cfg.decoder_start_token_id = BOS
cfg.bos_token_id = BOS
cfg.eos_token_id = EOS
cfg.pad_token_id = PAD
model = EncoderDecoderModel(config=cfg).eval()
noise_1d(model)
with torch.no_grad():
    # 4.x checkpoints hold one LM-head bias; make the two 5.x copies agree.
    model.decoder.cls.predictions.decoder.bias.copy_(model.decoder.cls.predictions.bias)
    # Store f16 (keeps the fixture small); compute in f32 on weights that are exactly f16 values.
    model.half().float()
    for p in model.parameters():
        p.copy_(p.half().float())
model.half().save_pretrained(os.path.join(ROOT, "tiny_seq2seq"), safe_serialization=True)
model.float()

g = torch.Generator().manual_seed(7)
enc_len = [40, 29]
enc_ids = torch.zeros(2, 40, dtype=torch.long)
enc_mask = torch.zeros(2, 40, dtype=torch.long)
for b, n in enumerate(enc_len):
    enc_ids[b, :n] = torch.randint(1, VOCAB, (n,), generator=g)
    enc_mask[b, :n] = 1
dec_ids = torch.cat([torch.full((2, 1), BOS), torch.randint(1, VOCAB, (2, 9), generator=g)], 1)

with torch.no_grad():
    out = model(input_ids=enc_ids, attention_mask=enc_mask, decoder_input_ids=dec_ids)
    logits = out.logits.float()
    enc_hidden = out.encoder_last_hidden_state.float()
    greedy = []
    for b in range(2):
        gen = model.generate(input_ids=enc_ids[b:b + 1], attention_mask=enc_mask[b:b + 1],
                             do_sample=False, max_length=32, decoder_start_token_id=BOS,
                             eos_token_id=EOS, pad_token_id=PAD, bos_token_id=BOS)
        greedy.append(gen[0])
    glen = max(len(x) for x in greedy)
    greedy_t = torch.full((2, glen), -1, dtype=torch.long)
    for b, x in enumerate(greedy):
        greedy_t[b, :len(x)] = x

# ---------------------------------------------------------------- classifier
ccfg = bert(32, 2, 4, 64, 1024, num_labels=3,
            id2label={0: "classical", 1: "pop", 2: "jazz"},
            label2id={"classical": 0, "pop": 1, "jazz": 2})
clf = BertForSequenceClassification(ccfg).eval()
noise_1d(clf)
clf.save_pretrained(os.path.join(ROOT, "tiny_classifier"), safe_serialization=True)
cls_ids = torch.randint(1, VOCAB, (1, 50), generator=g)
with torch.no_grad():
    cls_logits = clf(input_ids=cls_ids).logits.float()

save_file({
    "enc_ids": enc_ids.to(torch.int64).contiguous(),
    "enc_mask": enc_mask.to(torch.int64).contiguous(),
    "dec_ids": dec_ids.to(torch.int64).contiguous(),
    "logits": logits.contiguous(),
    "enc_hidden": enc_hidden.contiguous(),
    "greedy": greedy_t.contiguous(),
    "cls_ids": cls_ids.to(torch.int64).contiguous(),
    "cls_logits": cls_logits.contiguous(),
}, os.path.join(ROOT, "tiny_io.safetensors"))
print("greedy", greedy_t.tolist())
print("cls", cls_logits.tolist())
print("params seq2seq", sum(p.numel() for p in model.parameters()))
