"""Data loading of `training`: every file format and schema yields the same pairs; bad input gives a message."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest
from datasets import Dataset, DatasetDict

from training.data import DataSpec, conversation_pairs, detect_schema, load_pairs, pairs_from_splits
from training.demos import chat_demo, translation_demo
from training.errors import TrainingInputError
from training.prepare import LengthGroupedBatchSampler, tokenize_pairs

# Real sentence pairs with the characters that break naive readers: quotes, commas, tabs' neighbours.
PAIRS = [
    ('He said "hello", then left.', "Il a dit « bonjour », puis il est parti."),
    ("How are you?", "Comment vas-tu ?"),
    ("Go.", "Va !"),
    ("I'm fine, thanks.", "Ça va, merci."),
    ("It's 5 o'clock; we're late.", "Il est 5 heures ; nous sommes en retard."),
    ("Who knows?", "Qui sait ?"),
]


def write_formats(folder) -> dict[str, tuple[str, dict]]:
    """The pairs written in every supported file format and schema: name -> (path, extra spec fields)."""
    files: dict[str, tuple[str, dict]] = {}
    frame = pd.DataFrame(PAIRS, columns=["Q", "A"])
    frame.to_csv(folder / "named.csv", index=False)
    files["csv, named columns"] = (str(folder / "named.csv"), {"source_column": "Q", "target_column": "A"})
    with open(folder / "pairs.tsv", "w", encoding="utf-8") as handle:
        handle.write("source\ttarget\n")
        handle.writelines(f"{source}\t{target}\n" for source, target in PAIRS)
    files["tsv, source/target header"] = (str(folder / "pairs.tsv"), {})
    with open(folder / "tatoeba.txt", "w", encoding="utf-8") as handle:
        handle.writelines(f"{source}\t{target}\tCC-BY 2.0 (France)\n" for source, target in PAIRS)
    files["plain text source<TAB>target"] = (str(folder / "tatoeba.txt"), {})
    with open(folder / "opus.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"translation": {"en": s, "fr": t}}) + "\n" for s, t in PAIRS)
    files["jsonl, translation dict"] = (str(folder / "opus.jsonl"), {})
    with open(folder / "opus_reversed.json", "w", encoding="utf-8") as handle:
        json.dump([{"translation": {"fr": t, "en": s}} for s, t in PAIRS], handle)
    files["json, translation dict, flags"] = (
        str(folder / "opus_reversed.json"),
        {"source_lang": "en", "target_lang": "fr"},
    )
    pd.DataFrame(PAIRS, columns=["input", "output"]).to_parquet(folder / "pairs.parquet")
    files["parquet, input/output"] = (str(folder / "pairs.parquet"), {})
    with open(folder / "squad.json", "w", encoding="utf-8") as handle:
        rows = [
            {"id": str(i), "question": s, "answers": {"text": [t], "answer_start": [0]}}
            for i, (s, t) in enumerate(PAIRS)
        ]
        json.dump(rows, handle)
    files["json, SQuAD"] = (str(folder / "squad.json"), {})
    with open(folder / "chat.jsonl", "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"conversations": [PAIRS[0][0], PAIRS[0][1]]}) + "\n")
        turns = []
        for source, target in PAIRS[1:4]:
            turns += [{"role": "user", "content": source}, {"role": "assistant", "content": target}]
        handle.write(json.dumps({"conversations": turns}) + "\n")
        handle.write(
            json.dumps(
                {"conversations": [{"from": "human", "value": PAIRS[4][0]}, {"from": "gpt", "value": PAIRS[4][1]}]}
            )
            + "\n"
        )
        handle.write(json.dumps({"conversations": [PAIRS[5][0], PAIRS[5][1]]}) + "\n")
    files["jsonl, conversations"] = (str(folder / "chat.jsonl"), {})
    return files


def all_pairs(splits) -> list[tuple[str, str]]:
    return sorted((row["source"], row["target"]) for split in splits.values() for row in split)


@pytest.mark.parametrize("streaming", [False, True], ids=["in-memory", "streaming"])
def test_every_format_and_schema_loads_to_the_same_pairs(tmp_path, streaming):
    for name, (path, flags) in write_formats(tmp_path).items():
        splits, _ = load_pairs(DataSpec(dataset=path, validation_size=2, streaming=streaming, **flags))
        assert all_pairs(splits) == sorted(PAIRS), name


def test_validation_is_held_out_from_train_without_overlap(tmp_path):
    path, flags = write_formats(tmp_path)["tsv, source/target header"]
    splits, _ = load_pairs(DataSpec(dataset=path, validation_size=2, seed=3))
    assert len(splits["validation"]) == 2 and len(splits["train"]) == len(PAIRS) - 2
    assert not set(splits["validation"]["source"]) & set(splits["train"]["source"])


def test_a_given_validation_split_is_used():
    splits = DatasetDict(
        {
            "train": Dataset.from_dict({"source": [s for s, _ in PAIRS[:4]], "target": [t for _, t in PAIRS[:4]]}),
            "validation": Dataset.from_dict({"source": [PAIRS[4][0]], "target": [PAIRS[4][1]]}),
        }
    )
    pairs, schema = pairs_from_splits(splits, DataSpec(dataset="memory"), source="memory")
    assert schema.kind == "columns"
    assert list(pairs["validation"]["source"]) == [PAIRS[4][0]]


def test_conversation_turns_pair_up_only_with_replies():
    assert conversation_pairs(["a", "b", "c"]) == [("a", "b"), ("b", "c")]
    turns = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "r"},
    ]
    assert conversation_pairs(turns) == [("q", "r")]


def test_ambiguous_columns_name_the_columns_and_flags():
    with pytest.raises(TrainingInputError, match=r"'left', 'right'.*--source-column"):
        detect_schema(["left", "right"], DataSpec(dataset="x"))


def test_embedded_demos_are_real_language_and_reproducible():
    first, second = translation_demo(200, "en", "de", seed=1), translation_demo(200, "en", "de", seed=1)
    assert first["source"] == second["source"] and len(set(first["source"])) == 200
    assert any("Montag" in target or "Januar" in target for target in first["target"])
    conversations = chat_demo()
    assert len(conversations) > 500 and all(len(turns) >= 2 for turns in conversations["conversation"])


def test_tokenization_counts_empty_and_overlong_rows():
    from hf_seq2seq_rnn.tokenization_seq2seq_rnn import train_tokenizer

    tokenizer = train_tokenizer([s for pair in PAIRS for s in pair] * 3, vocab_size=400)
    rows = PAIRS + [("", "rien"), ("word " * 40, "long")]
    pairs = Dataset.from_dict({"source": [s for s, _ in rows], "target": [t for _, t in rows]})
    kept, report = tokenize_pairs(pairs, tokenizer, max_source_length=30, max_target_length=30, overlong="filter")
    assert (report.rows, report.empty, report.overlong, report.kept) == (8, 1, 1, 6) and len(kept) == 6
    cut, report = tokenize_pairs(pairs, tokenizer, max_source_length=30, max_target_length=30, overlong="truncate")
    assert report.kept == 7 and max(len(ids) for ids in cut["input_ids"]) == 30
    assert all(ids[-1] == tokenizer.eos_token_id for ids in cut["input_ids"])


def test_length_grouped_batches_cover_every_index_once_and_repeat_per_epoch():
    lengths = [(7 * i) % 23 for i in range(500)]
    sampler = LengthGroupedBatchSampler(lengths, batch_size=16, seed=5, window_batches=4)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(500)) and len(batches) == len(sampler)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 6  # unsorted batches of 16 would span nearly the whole 0..22 range
    assert list(sampler) == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_batches_group_pairs_by_target_length_first():
    """The decoder runs as many steps as a batch's longest target: pairs are grouped by target
    length first, so a batch's targets are (nearly) equally long however its sources vary."""
    from hf_seq2seq_rnn.tokenization_seq2seq_rnn import train_tokenizer

    words = ["chat", "chien", "maison", "arbre", "soleil", "lune"]
    generator = random.Random(4)
    rows = [
        (
            " ".join(generator.choices(words, k=generator.randint(1, 20))),
            " ".join(generator.choices(words, k=generator.randint(1, 6))),
        )
        for _ in range(400)
    ]
    tokenizer = train_tokenizer([" ".join(words)] * 10, vocab_size=300)
    pairs = Dataset.from_dict({"source": [s for s, _ in rows], "target": [t for _, t in rows]})
    kept, _ = tokenize_pairs(pairs, tokenizer, max_source_length=64, max_target_length=64, overlong="filter")
    batches = list(LengthGroupedBatchSampler(kept["length"], batch_size=16, seed=1, window_batches=25))
    target_lengths = [len(ids) for ids in kept["labels"]]
    padding = sum(max(target_lengths[i] for i in b) - target_lengths[i] for b in batches for i in b)
    assert padding <= 16 * 6, padding  # at most a batch's worth at each of the 6 boundaries between lengths


def write_lines(path, lines: list[str]) -> str:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("streaming", [False, True], ids=["in-memory", "streaming"])
def test_a_tsv_or_csv_without_a_header_reads_as_pairs_from_its_first_row(tmp_path, streaming):
    tsv = write_lines(tmp_path / "test.tsv", [f"{source}\t{target}" for source, target in PAIRS])
    pd.DataFrame(PAIRS).to_csv(tmp_path / "test.csv", index=False, header=False)  # quotes around the commas
    for path in (tsv, str(tmp_path / "test.csv")):
        splits, schema = load_pairs(DataSpec(dataset=path, validation_size=2, streaming=streaming))
        assert all_pairs(splits) == sorted(PAIRS), path  # the first row is a pair, not column names
        assert (schema.source, schema.target) == ("source", "target")


@pytest.mark.parametrize(
    "header, flags",
    [
        ("source\ttarget", {}),
        ("TGT\tSRC", {}),  # a known pair in either order, any case
        ("Q\tA", {}),
        ("english\tfrench", {"source_column": "english", "target_column": "french"}),
        ("en\tfr", {"source_lang": "en", "target_lang": "fr"}),  # predict passes the model's languages
    ],
)
def test_a_header_that_names_the_columns_is_read_as_before(tmp_path, header, flags):
    path = write_lines(tmp_path / "test.tsv", [header] + [f"{source}\t{target}" for source, target in PAIRS])
    splits, _ = load_pairs(DataSpec(dataset=path, validation_size=2, **flags))
    expected = [(t, s) for s, t in PAIRS] if header == "TGT\tSRC" else PAIRS
    assert all_pairs(splits) == sorted(expected)


@pytest.mark.parametrize(
    "first_rows",
    [
        ["english\tfrench"],  # two bare words: rather names than a pair
        ["Feb 8, 2008\t8 févr. 2008", "Feb 9, 2008\t"],  # a row without a target: in doubt
    ],
    ids=["bare words", "a row without a target"],
)
def test_an_ambiguous_first_row_is_a_header_and_the_error_says_so_and_how_to_pass_none(tmp_path, first_rows):
    path = write_lines(tmp_path / "test.tsv", first_rows + [f"{source}\t{target}" for source, target in PAIRS])
    with pytest.raises(TrainingInputError) as caught:
        load_pairs(DataSpec(dataset=path, validation_size=2))
    message = str(caught.value)
    assert f"the first row of {path} was read as a header (column names)" in message
    assert "put a line source<TAB>target above it, or rename the file .txt" in message
    assert "\n" not in message
    renamed = tmp_path / "test.txt"  # the way out the message names: the pairs, first row included
    renamed.write_bytes((tmp_path / "test.tsv").read_bytes())
    if first_rows[0] == "english\tfrench":
        splits, _ = load_pairs(DataSpec(dataset=str(renamed), validation_size=2))
        assert all_pairs(splits) == sorted([("english", "french"), *PAIRS])


@pytest.mark.parametrize("streaming", [False, True], ids=["in-memory", "streaming"])
def test_rows_with_a_third_field_are_skipped_counted_and_the_rest_read(tmp_path, caplog, streaming):
    rows = [f"{source}\t{target}" for source, target in PAIRS]
    rows[3] += "\tan extra field"  # a stray tab: three fields
    rows[5] += "\tone\ttwo"
    path = write_lines(tmp_path / "test.tsv", ["source\ttarget", *rows])
    with caplog.at_level("WARNING", logger="training.data"):
        splits, _ = load_pairs(DataSpec(dataset=path, validation_size=2, streaming=streaming))
    assert all_pairs(splits) == sorted(pair for index, pair in enumerate(PAIRS) if index not in (3, 5))
    assert "skipped 2 row(s) whose field count differs from the first row's (line 5 has 3 fields" in caplog.text


def test_a_source_file_and_a_target_file_read_as_the_pairs_of_their_lines(tmp_path):
    """`--dataset train.de --target-file train.en`: line i of one is the target of line i of the other,
    the pairs a .tsv of the same lines gives (a tab inside a line stays in its side)."""
    pairs = [*PAIRS, ("a\ttab", "un\ttab")]
    source = write_lines(tmp_path / "train.de", [source for source, _ in pairs])
    target = write_lines(tmp_path / "train.en", [target for _, target in pairs])
    splits, schema = load_pairs(DataSpec(dataset=source, target_file=target, validation_size=2))
    assert all_pairs(splits) == sorted(pairs) and (schema.source, schema.target) == ("source", "target")
    write_lines(tmp_path / "short.en", [target for _, target in pairs[:-2]])
    with pytest.raises(TrainingInputError, match=r"train.de has 7 lines but .*short.en has 5: --target-file holds"):
        load_pairs(DataSpec(dataset=source, target_file=str(tmp_path / "short.en")))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--demo", "translation", "--target-file", "t.en"], "--target-file goes with --dataset"),
        (
            ["--dataset", "s.de", "--target-file", "t.en", "--streaming", "--max-steps", "5"],
            "reads both files into memory",
        ),
    ],
)
def test_a_target_file_without_a_source_file_or_with_streaming_is_refused(arguments, message):
    from training.config import parse_config

    with pytest.raises(TrainingInputError, match=message):
        parse_config(arguments)


def test_a_stream_no_longer_than_its_held_out_validation_is_refused_with_what_to_pass(tmp_path):
    path = write_lines(tmp_path / "pairs.tsv", ["source\ttarget"] + [f"{s}\t{t}" for s, t in PAIRS])
    with pytest.raises(TrainingInputError, match=r"has 500 rows or fewer: a stream holds its first 500 out"):
        load_pairs(DataSpec(dataset=path, streaming=True))
    splits, _ = load_pairs(DataSpec(dataset=path, streaming=True, validation_size=2))
    assert len(list(splits["train"])) == len(PAIRS) - 2


def test_plain_text_of_another_extension_is_sources_only_and_training_refuses_it(tmp_path):
    path = write_lines(tmp_path / "newstest2014.en", [source for source, _ in PAIRS])
    with pytest.raises(TrainingInputError, match=r"holds sources only, in 'source' \(no targets\); training needs"):
        load_pairs(DataSpec(dataset=path))


def tatoeba_like_pairs(count: int) -> list[tuple[str, str]]:
    """Sentence pairs with accents, punctuation, digits, emoji and Hangul, for tokenization tests."""
    generator = random.Random(11)
    words = ["Il", "a", "dit", "« bonjour »", "déjà", "l'été", "12:30", "naïve", "😀", "안녕하세요", "NFKC ﬁ", "?!"]
    return [
        (" ".join(generator.choices(words, k=generator.randint(1, 12))), " ".join(generator.choices(words, k=3)))
        for _ in range(count)
    ]


def test_the_backend_encoding_gives_the_ids_of_the_tokenizers_own_call():
    from hf_seq2seq_rnn.tokenization_seq2seq_rnn import train_tokenizer
    from training.prepare import encode_texts

    rows = tatoeba_like_pairs(300)
    texts = [text for pair in rows for text in pair]
    tokenizer = train_tokenizer(texts[:200], vocab_size=300)
    expected = tokenizer(texts, truncation=False)["input_ids"]
    assert encode_texts(tokenizer, texts, max_length=8, truncate=False) == expected
    tokenizer(texts[:3], truncation=True, max_length=4)  # leaves truncation set in the backend
    assert encode_texts(tokenizer, texts, max_length=8, truncate=False) == expected
    assert (
        encode_texts(tokenizer, texts, max_length=8, truncate=True)
        == tokenizer(texts, truncation=True, max_length=8)["input_ids"]
    )
    assert any(len(ids) > 8 for ids in expected)


def test_preparation_uses_the_cpus_for_large_splits_and_one_process_for_small_ones(monkeypatch):
    from training import prepare

    monkeypatch.setattr(prepare, "usable_cpus", lambda: 6)
    assert prepare.preparation_workers(None, prepare.PARALLEL_MIN_ROWS) == 6
    assert prepare.preparation_workers(None, prepare.PARALLEL_MIN_ROWS - 1) == 1
    assert prepare.preparation_workers(None, None) == 1  # a stream
    assert prepare.preparation_workers(3, 10) == 3


def test_two_processes_tokenize_a_split_as_one_does():
    from hf_seq2seq_rnn.tokenization_seq2seq_rnn import train_tokenizer

    rows = tatoeba_like_pairs(2000) + [("", "rien"), ("word " * 40, "long")]
    tokenizer = train_tokenizer([text for pair in rows for text in pair], vocab_size=300)
    pairs = Dataset.from_dict({"source": [s for s, _ in rows], "target": [t for _, t in rows]})
    one, one_report = tokenize_pairs(pairs, tokenizer, max_source_length=30, max_target_length=30, num_proc=1)
    two, two_report = tokenize_pairs(pairs, tokenizer, max_source_length=30, max_target_length=30, num_proc=2)
    assert one_report == two_report and one_report.empty == 1 and one_report.overlong >= 1
    assert one.to_dict() == two.to_dict()
    assert one["length"] == [len(t) * 65536 + len(s) for s, t in zip(one["input_ids"], one["labels"], strict=True)]


def test_a_split_larger_than_the_sample_trains_the_tokenizer_on_a_seeded_random_sample(caplog):
    from hf_seq2seq_rnn.tokenization_seq2seq_rnn import train_tokenizer
    from training.prepare import load_or_train_tokenizer

    generator = random.Random(3)
    syllables = [consonant + vowel for consonant in "bdfgklmnprstvz" for vowel in "aeiou"]
    words = ["".join(generator.choices(syllables, k=generator.randint(1, 4))) for _ in range(3000)]
    rows = [(" ".join(generator.choices(words, k=6)), " ".join(generator.choices(words, k=6))) for _ in range(500)]
    pairs = Dataset.from_dict({"source": [s for s, _ in rows], "target": [t for _, t in rows]})
    with caplog.at_level("INFO"):
        sampled = load_or_train_tokenizer(pairs, None, 300, 2, 64, sample_pairs=100, seed=7)
    assert "trained on 100 of the 500 training pairs" in caplog.text
    chosen = sorted(random.Random(7).sample(range(500), 100))
    expected = train_tokenizer([text for i in chosen for text in rows[i]], vocab_size=300, model_max_length=64)
    assert sampled.get_vocab() == expected.get_vocab()
    whole = load_or_train_tokenizer(pairs, None, 300, 2, 64, sample_pairs=500, seed=7)
    assert whole.get_vocab() != sampled.get_vocab()


@pytest.mark.parametrize("kind", ["bpe", "char", "morpheme"])
def test_a_tokenizer_trained_on_cached_pairs_is_kept_and_loaded_again_as_the_same_tokenizer(tmp_path, kind, caplog):
    from datasets import load_from_disk

    from training.prepare import load_or_train_tokenizer

    rows = tatoeba_like_pairs(300) + [("안녕하세요 반갑습니다", "만나서 반가워요")] * 20
    Dataset.from_dict({"source": [s for s, _ in rows], "target": [t for _, t in rows]}).save_to_disk(tmp_path / "d")
    pairs = load_from_disk(str(tmp_path / "d"))  # a split with cache files, as datasets reads a file
    with caplog.at_level("INFO"):
        trained = load_or_train_tokenizer(pairs, None, 400, 2, 64, kind=kind)
        assert "by an earlier run" not in caplog.text
        cached = load_or_train_tokenizer(pairs, None, 400, 2, 64, kind=kind)
        assert "tokenizer: the one trained on the same pairs and settings by an earlier run" in caplog.text
    assert type(cached) is type(trained) and cached.get_vocab() == trained.get_vocab()
    texts = [text for pair in rows for text in pair]
    assert cached(texts)["input_ids"] == trained(texts)["input_ids"]
