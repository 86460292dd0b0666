"""Train the built-in tokenizer (byte-level BPE, 512 tokens) on llem's built-in prompts.

Run once; the output is committed at llem/assets/tokenizer/tokenizer.json so that the default
experiment runs offline. Deterministic: same text, same vocabulary.
    python scripts/train_tokenizer.py
"""
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

root = Path(__file__).resolve().parents[1]
text = (root / "llem/datasets/builtin_prompts.txt").read_text().splitlines()
tok = Tokenizer(models.BPE(unk_token=None))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(
    vocab_size=512,
    special_tokens=["<pad>", "<s>", "</s>"],
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    show_progress=False,
)
tok.train_from_iterator(text * 4, trainer=trainer)
out = root / "llem/assets/tokenizer/tokenizer.json"
out.parent.mkdir(parents=True, exist_ok=True)
tok.save(str(out), pretty=False)
print(out, tok.get_vocab_size(), out.stat().st_size, "bytes")
