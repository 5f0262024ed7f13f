"""Tables and files made on Windows by a European lab (German / French Excel): semicolons and
decimal commas, a byte-order mark, the Windows code page, UTF-16 "Unicode text" with tabs, CRLF,
empty ``;;;`` columns and lines, sex as ``m``/``w`` or ``Mann``/``Frau``, and paths written with
backslashes under folders named ``Studie Müller``. What is unambiguous is read; what would be
read wrongly is refused in one line that says what to do."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli
from medseg.errors import MedsegError
from medseg.pairs import read_pairs
from medseg.subjects import Subject, read_subjects

SAX = "lv=1,myo=2,rv=3"


def _file(tmp_path, text, encoding="utf-8", name="table.csv"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


@pytest.mark.parametrize(("text", "encoding", "want"), [
    # "CSV UTF-8" of German Excel: BOM, semicolons, decimal comma, CRLF, empty columns and lines, w = weiblich
    ("\ufeffPatient;Height_cm;Weight_kg;Sex;;;\r\npatient017;178,5;85;w;;;\r\n;;;;;;\r\n;;;;;;\r\n", "utf-8",
     (Subject("patient017", 178.5, 85.0, "F"),)),
    # plain "CSV" in the Windows code page: umlauts in an id, quoted cells, Mann / Frau
    ('"case";"height_cm";"weight_kg";"sex"\r\n"M\xfcller";"172,5";"80";"Mann"\r\n"Gr\xf6\xdfe";"160";"55,5";"Frau"\r\n', "cp1252",
     (Subject("M\xfcller", 172.5, 80.0, "M"), Subject("Gr\xf6\xdfe", 160.0, 55.5, "F"))),
    # "Unicode text": UTF-16 with its BOM, tabs; weiblich / m\u00e4nnlich / d (divers: not known)
    ("case\theight_cm\tsex\r\nA1\t165,5\tweiblich\r\nA2\t180\tm\xe4nnlich\r\nA3\t170\td\r\n", "utf-16",
     (Subject("A1", 165.5, None, "F"), Subject("A2", 180.0, None, "M"), Subject("A3", 170.0, None, None))),
    # French: femme / homme, a decimal point in a semicolon file, a column that is not body data
    ("id;poids_perte;weight_kg;sex\r\nP1;3;62.5;femme\r\nP2;;81;homme\r\n", "cp1252",
     (Subject("P1", None, 62.5, "F"), Subject("P2", None, 81.0, "M"))),
])
def test_european_excel_subjects_files_are_read(tmp_path, text, encoding, want):
    assert read_subjects(_file(tmp_path, text, encoding)) == want


@pytest.mark.parametrize(("text", "said"), [
    # an unquoted decimal comma in a comma-separated file: it was height 172 and weight 5 kg, without a word
    ("case,height_cm,weight_kg\np1,172,5,80\n", "line 2: 4 cells under a header of 3: a comma inside a cell (a decimal comma"),
    ("case,height_cm,weight_kg,heart_rate\np1,172,80,5,71\n", "save the file with semicolons as separator, or put such cells in quotes"),
    # a value column named otherwise was ignored without a word (no BSA, no indexed values)
    ("case;Height [cm];Weight [kg];sex\np1;172;80;m\n", "column 'Height [cm]' is not read; name it 'height_cm' (in cm)"),
    ("Patient;Gr\xf6\xdfe;Gewicht (kg);Geschlecht\np1;172;80;m\n", "column 'Gr\xf6\xdfe' is not read; name it 'height_cm'"),
    ("case;height_cm;Geschlecht\np1;172;w\n", "column 'Geschlecht' is not read; name it 'sex' (M or F)"),
    # H is homme in French and hombre in Spanish, where M is mujer
    ("case;sex\np1;H\n", "sex 'H' is not M or F (H: homme, or hombre beside M = mujer?); write M or F"),
    ("case;weight_kg\np1;80 kg\n", "weight_kg '80 kg' is not a number (write the number alone"),
    ("sep=;\r\ncase;height_cm\r\np1;172\r\n", "line 1 is Excel's separator hint 'sep=;': delete that line"),
])
def test_what_would_be_read_wrongly_is_refused_in_one_line(tmp_path, text, said):
    with pytest.raises(MedsegError) as e:
        read_subjects(_file(tmp_path, text, "cp1252"))
    assert said in str(e.value) and "\n" not in str(e.value)


def test_a_file_read_in_the_windows_code_page_says_so(tmp_path):
    notes: list[str] = []
    read_subjects(_file(tmp_path, "case;height_cm\r\nM\xfcller;172\r\n", "cp1252"), notes)
    assert len(notes) == 1 and "is not UTF-8: read in the Windows code page (cp1252)" in notes[0]
    notes.clear()
    read_subjects(_file(tmp_path, "case;height_cm\r\nM\xfcller;172\r\n", "utf-8-sig"), notes)
    read_subjects(_file(tmp_path, "case;height_cm\r\nM\xfcller;172\r\n", "utf-16"), notes)
    assert notes == []


def _sax_case(folder, case):
    """``<case>.nii.gz`` (a one-frame short-axis phantom) and ``<case>_gt.nii.gz`` (its labels)."""
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=1, n_slices=6, shape=(64, 64), seed=0)
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 3), ph.image.affine), str(folder / f"{case}.nii.gz"))
    write_labels(ph.labels, ph.image, folder / f"{case}_gt.nii.gz", SAX)
    return folder / f"{case}.nii.gz", folder / f"{case}_gt.nii.gz"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """``Studie Müller/images/p1.nii.gz`` + ``p1_gt.nii.gz``, and ``pred/p1.nii.gz`` (the labels)."""
    root = tmp_path_factory.mktemp("excel")
    image, label = _sax_case(root / "Studie M\xfcller" / "images", "p1")
    (root / "pred").mkdir()
    nib.save(nib.load(str(label)), str(root / "pred" / "p1.nii.gz"))
    return root


def test_windows_paths_and_empty_excel_rows_in_a_pairs_file(study, tmp_path):
    """``Studie Müller\\images\\p1.nii.gz`` (a backslash path, cp1252, CRLF, ``;;`` columns and
    lines): it was 'file not found' and an empty line 'the image cell is empty'."""
    csv = study / "pairs_win.csv"
    csv.write_bytes("image;label;;\r\nStudie M\xfcller\\images\\p1.nii.gz;.\\Studie M\xfcller\\images\\p1_gt.nii.gz;;\r\n;;;\r\n;;;\r\n".encode("cp1252"))
    (pair,) = read_pairs(csv)
    images = study / "Studie M\xfcller" / "images"
    assert (pair.image, pair.label, pair.case) == (images / "p1.nii.gz", images / "p1_gt.nii.gz", "p1")


@pytest.mark.parametrize(("cell", "said"), [
    ("C:\\Studie\\images\\p1.nii.gz", "(C:\\Studie\\images\\p1.nii.gz is a Windows path: write it relative to the CSV's folder"),
    ("\\\\server\\share\\p1.nii.gz", "is a Windows path"),
])
def test_a_windows_drive_path_is_named_as_one(study, cell, said):
    csv = study / "pairs_drive.csv"
    csv.write_bytes(f"image;label\r\n{cell};Studie M\xfcller\\images\\p1_gt.nii.gz\r\n".encode("cp1252"))
    with pytest.raises(MedsegError) as e:
        read_pairs(csv)
    assert "row 2: file not found" in str(e.value) and said in str(e.value) and "\n" not in str(e.value)


def test_evaluate_reads_a_windows_made_pairs_file_and_says_how(study, capsys):
    csv = study / "pairs_eval.csv"
    csv.write_bytes("image;label\r\nStudie M\xfcller\\images\\p1.nii.gz;Studie M\xfcller\\images\\p1_gt.nii.gz\r\n;\r\n".encode("cp1252"))
    out = study / "r.json"
    assert run_cli(["evaluate", "--pairs", str(csv), "--label-map", SAX, "--predicted", str(study / "pred"), "-o", str(out)]) == 0
    said = capsys.readouterr()
    assert "pairs_eval.csv is not UTF-8: read in the Windows code page (cp1252)" in said.out + said.err
    case = json.loads(out.read_text())["cases"][0]
    assert case["image"] == str(study / "Studie M\xfcller" / "images" / "p1.nii.gz") and case["dice"] == {"lv": 1.0, "myo": 1.0, "rv": 1.0}


def test_batch_refuses_a_comma_separated_decimal_comma_before_any_work(study, tmp_path, capsys):
    subjects = _file(tmp_path, "case,height_cm,weight_kg\np1,172,5,80\n", name="subjects.csv")
    argv = ["batch", str(study / "Studie M\xfcller" / "images"), "-o", str(tmp_path / "out"), "--auto", "--measure", "--subjects", str(subjects)]
    assert run_cli(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "subjects.csv, line 2: 4 cells under a header of 3" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_prompts_and_label_map_json_saved_by_notepad_or_powershell(tmp_path, encoding):
    """Windows Notepad saves UTF-8 with a byte-order mark, PowerShell's Out-File UTF-16: both were
    'not valid JSON' (a label map in UTF-16: a UnicodeDecodeError traceback)."""
    from medseg.labels import LabelMap
    from medseg.prompt_file import load_prompts_file

    prompts = {"label_map": {"lv": 1}, "prompts": [{"structure": "lv", "frame": 0, "slice": 3, "box": [20, 20, 40, 40]}]}
    p = _file(tmp_path, json.dumps(prompts, indent=1).replace("\n", "\r\n"), encoding, "prompts.json")
    assert len(load_prompts_file(p).prompts) == 1
    lm = _file(tmp_path, '{"lv": 3, "myo": 2, "rv": 1}\r\n', encoding, "labels.json")
    assert LabelMap.parse(str(lm)).values == {"lv": 3, "myo": 2, "rv": 1}


def test_a_prompts_table_is_refused_as_not_json(tmp_path):
    from medseg.errors import PromptError
    from medseg.prompt_file import load_prompts_file

    p = _file(tmp_path, "structure;slice;box\r\nlv;3;20,20,40,40\r\n", name="prompts.csv")
    with pytest.raises(PromptError, match="a prompts file is JSON, not a table"):
        load_prompts_file(p)
