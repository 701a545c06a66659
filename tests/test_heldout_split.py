"""`lowres data split`: whole documents held out, the same ones in every language, readable back as a
text source with train and validation splits."""

from __future__ import annotations

import json

from lowres.cli import main
from lowres.data.text import readers
from lowres.data.text.heldout import heldout_ids
from lowres.data.text.sources import open_source


def fake_flores(root):
    """12 documents (URLs) of 1-3 lines in eng, yor and pan; line i says which document it belongs to."""
    directory = root / "flores" / "dev"
    directory.mkdir(parents=True)
    urls = [f"https://example.org/{d}" for d in range(12) for _ in range(1 + d % 3)]
    (root / "flores" / "metadata_dev.tsv").write_text("URL\tdomain\n" + "".join(f"{u}\twiki\n" for u in urls))
    for lang in ("eng", "yor", "pan"):
        (directory / f"{lang}.dev").write_text("".join(f"{lang} doc{u.rsplit('/', 1)[1]} line{i}\n"
                                                       for i, u in enumerate(urls)))
    return directory


def test_split_holds_out_whole_documents_alike_in_every_language(tmp_path, capsys):
    directory = fake_flores(tmp_path)
    out = tmp_path / "split"
    assert main(["data", "split", f"flores:{directory}", "--langs=eng,yor,pan_Guru", f"--output={out}",
                 "--heldout_fraction=0.25", "--max_train_bytes=yor=60"]) == 0
    held = {lang: (out / f"{lang}.validation.txt").read_text().splitlines() for lang in ("eng_Latn", "pan_Guru")}
    docs = {lang: {line.split()[1] for line in lines} for lang, lines in held.items()}
    assert docs["eng_Latn"] == docs["pan_Guru"] and len(docs["eng_Latn"]) == 3  # 25% of 12 documents
    train = (out / "eng_Latn.train.txt").read_text().splitlines()
    assert len(train) == 9 and not {line.split()[1] for line in train} & docs["eng_Latn"]
    # A document's lines stay together on one line.
    assert all(len({word for word in line.split() if word.startswith("doc")}) == 1 for line in train)
    assert sum(len(line.encode()) + 1 for line in (out / "yor_Latn.train.txt").read_text().splitlines()) <= 60
    record = json.loads((out / "split.json").read_text())
    assert record["languages"]["eng_Latn"]["validation"]["documents"] == 3
    # Read back as a source with both splits.
    source = open_source(f"text:{out}/{{lang}}.{{split}}.txt")
    assert sorted(source.splits()) == ["train", "validation"]
    assert len(list(source.documents("pan_Guru", "validation"))) == 3
    assert "validation 3" in capsys.readouterr().out


def test_bad_split_options_are_one_line_errors(tmp_path, capsys):
    directory = fake_flores(tmp_path)
    for args in (["--max_train_bytes=yor"], ["--heldout_fraction=1.5"], ["--max_train_bytes=hin=10"]):
        assert main(["data", "split", f"flores:{directory}", "--langs=eng,yor", f"--output={tmp_path / 'o'}", *args]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_heldout_ids_are_seeded_and_never_all():
    ids = [f"dev:{i}" for i in range(10)]
    assert heldout_ids(ids, 0.3, seed=1) == heldout_ids(ids, 0.3, seed=1) != heldout_ids(ids, 0.3, seed=2)
    assert len(heldout_ids(ids[:2], 0.99)) == 1


def test_a_source_counted_on_train_answers_none_for_validation():
    """seqio asks every split for its example count; a corpus counted on train only must not fail there."""
    source = readers.document_source(lambda split, i, n: iter(()), ["train", "validation"],
                                     num_input_examples={"train": 5})
    assert source.num_input_examples("train") == 5 and source.num_input_examples("validation") is None
