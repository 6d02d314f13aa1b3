"""Korean in the tokenizers: composed and decomposed Hangul (and Latin accents) give the same ids in every
tokenizer kind, and the morpheme tokenizer (kiwipiepy, the `[ko]` extra) saves, reloads in a fresh
process through `AutoTokenizer`, keeps the original spacing, and says in one line when its analyzer is missing.

    pytest tests/test_korean_tokenization.py
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from hf_seq2seq_rnn import train_tokenizer
from hf_seq2seq_rnn.tokenization_seq2seq_rnn import MISSING_ANALYZER, MORPHEME_MARK, TOKENIZER_KINDS, split_morphemes

REPO = Path(__file__).resolve().parent.parent
HAS_ANALYZER = importlib.util.find_spec("kiwipiepy") is not None
needs_analyzer = pytest.mark.skipif(
    not HAS_ANALYZER, reason="kiwipiepy is not installed (the [ko] extra: pip install '.[ko]')"
)
CORPUS = [
    "나는 어제 사과를 샀다.",
    "안녕하세요, 만나서 반가워요!",
    "오늘 날씨가 좋네요.",
    "한국어를 배우고 있어요.",
    "I bought an apple yesterday.",
    "Un café crème, s'il vous plaît.",
    "Zoë est naïve ; Müller ist müde.",
] * 10
# Composed text, written decomposed too: Hangul syllables become conjoining jamo, é becomes e + U+0301.
TEXTS = ["한국어를 배우고 있어요.", "오늘 날씨가 좋네요", "café crème", "Zoë, naïve, Müller"]


def kind_params() -> list:
    return [
        pytest.param(kind, marks=needs_analyzer) if kind == "morpheme" else pytest.param(kind)
        for kind in TOKENIZER_KINDS
    ]


@pytest.fixture(scope="module")
def tokenizers() -> dict:
    return {}


def trained(tokenizers: dict, kind: str):
    if kind not in tokenizers:
        tokenizers[kind] = train_tokenizer(CORPUS, vocab_size=400, min_frequency=1, kind=kind)
    return tokenizers[kind]


@pytest.mark.parametrize("kind", kind_params())
@pytest.mark.parametrize("text", TEXTS)
def test_composed_and_decomposed_text_give_the_same_ids(tokenizers, kind, text):
    tokenizer = trained(tokenizers, kind)
    composed, decomposed = unicodedata.normalize("NFC", text), unicodedata.normalize("NFD", text)
    assert composed != decomposed  # the test means something only if the two spellings differ
    ids = tokenizer(composed).input_ids
    assert tokenizer(decomposed).input_ids == ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == composed


@needs_analyzer
def test_morphemes_are_cut_inside_words_as_written():
    # 샀다 is 사 + 었 + 다 to the analyzer; the cut falls where 다 starts in the text as written.
    assert split_morphemes("나는 어제 사과를 샀다.").split(MORPHEME_MARK) == ["나", "는 어제 사과", "를 샀", "다", "."]
    assert split_morphemes("I bought an apple yesterday.") == "I bought an apple yesterday."  # no Hangul, no cuts


@needs_analyzer
def test_morpheme_tokens_never_cross_a_morpheme_and_decode_with_the_original_spacing(tokenizers):
    tokenizer = trained(tokenizers, "morpheme")
    for text in ["나는 어제 사과를 샀다.", "안녕하세요, 만나서 반가워요!"]:
        # Each token ends before or at a cut: the token ends are a superset of the morpheme ends.
        tokens = tokenizer.convert_ids_to_tokens(tokenizer(text).input_ids)[:-1]
        token_ends = set(itertools.accumulate(len(token.replace("▁", "")) for token in tokens))
        pieces = split_morphemes(text).replace(" ", "").split(MORPHEME_MARK)
        assert set(itertools.accumulate(map(len, pieces))) <= token_ends, (tokens, pieces)
    # With room for every merge, plain subwords learn the word 나는, morphemes never do.
    bpe, morpheme = (
        train_tokenizer(CORPUS, vocab_size=1000, min_frequency=1, kind=kind) for kind in ("bpe", "morpheme")
    )
    assert "▁나는" in bpe.get_vocab() and "▁나는" not in morpheme.get_vocab() and "▁나" in morpheme.get_vocab()
    for text in ["나는   어제  사과를 샀다 .", " 안녕하세요,만나서 반가워요!", "새 문장: 처음 보는 단어들 😀"]:
        ids = tokenizer(text).input_ids
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == text.lstrip(" ")


@needs_analyzer
def test_morpheme_tokenizer_saves_and_reloads_in_a_fresh_process(tokenizers, tmp_path):
    tokenizer = trained(tokenizers, "morpheme")
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "tokenization_seq2seq_rnn.py").is_file()  # the code travels with the tokenizer
    texts = ["나는 어제 사과를 샀다.", "오늘  날씨가 좋네요", unicodedata.normalize("NFD", "한국어를 배워요")]
    load = (
        "import json, sys; from transformers import AutoTokenizer\n"
        "tokenizer = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
        "ids = [tokenizer(text).input_ids for text in json.loads(sys.argv[2])]\n"
        "print(json.dumps([type(tokenizer).__name__, ids, tokenizer.batch_decode(ids, skip_special_tokens=True)]))\n"
    )
    # Another directory and no PYTHONPATH: only the saved files define the tokenizer.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", load, str(tmp_path), json.dumps(texts)],
        cwd=tmp_path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    name, ids, decoded = json.loads(result.stdout.splitlines()[-1])
    assert name == "Seq2SeqRNNMorphemeTokenizer"
    assert ids == [tokenizer(text).input_ids for text in texts]
    assert decoded == [unicodedata.normalize("NFC", text) for text in texts]


def blocked_analyzer(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import kiwipiepy` fails, whether or not it is installed."""
    stub = tmp_path / "stub" / "kiwipiepy"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "__init__.py").write_text("raise ImportError(\"No module named 'kiwipiepy'\")\n")
    return {**os.environ, "PYTHONPATH": f"{stub.parent}{os.pathsep}{REPO}", "HF_HUB_OFFLINE": "1"}


def test_missing_analyzer_is_one_line_naming_the_extra(tmp_path):
    train = [sys.executable, "-m", "training.train", "--config", "training/configs/chat_demo_ko.yaml"]
    train += ["--tokenizer-type", "morpheme", "--output-dir", str(tmp_path / "run")]
    result = subprocess.run(
        train, cwd=REPO, env=blocked_analyzer(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {MISSING_ANALYZER}"
    assert "pip install 'hf-seq2seq-rnn[ko]'" in MISSING_ANALYZER
    library = (
        "from hf_seq2seq_rnn import train_tokenizer\n"
        "try:\n"
        "    train_tokenizer(['나는 사과를 샀다'], vocab_size=300, kind='morpheme')\n"
        "except ImportError as error:\n"
        "    print('ImportError:', error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", library], cwd=REPO, env=blocked_analyzer(tmp_path), capture_output=True, text=True
    )
    assert result.stdout.strip() == f"ImportError: {MISSING_ANALYZER}", result.stderr[-2000:]
