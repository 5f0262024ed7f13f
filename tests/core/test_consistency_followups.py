"""Follow-ups of the M&Ms-2, LGE adapter and CT users' walkthroughs: `segment` / `batch
--prompts-from` read the label map that labels medseg wrote name in their sidecar (as measure,
evaluate and adapt do); `segment` / `batch` say which folder `--adapter NAME` found; `batch
--measure --no-basal-rule` and the napari panel's basal-rule choice (as `measure
--no-basal-rule`); `batch` says when one-frame reference labels prompted every frame of a cine."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli

ACDC = "lv=3,myo=2,rv=1,la=4"  # la: named by the map, held by no voxel of the labels


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: the shared test machine has 2 cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _save_image(vol, path) -> None:
    from medseg.io.geometry import medseg_to_nifti

    nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3 if vol.n_frames == 1 else 4), vol.affine), str(path))


@pytest.fixture(scope="module")
def small():
    """A 2-frame, 4-slice, 80 x 80 cine phantom (image Volume, labels in medseg's values)."""
    from medseg.phantoms import cine_sax_phantom

    p = cine_sax_phantom(n_frames=2, n_slices=4, shape=(80, 80), spacing=(10.0, 1.8, 1.8), seed=3)
    return p.image, p.labels


@pytest.fixture(scope="module")
def study(tmp_path_factory, small):
    """One frame as NIfTI; its labels written by medseg with ACDC's values, whose sidecar names
    lv=3, myo=2, rv=1 and an la the labels do not hold; and the same labels with no sidecar."""
    from medseg.io import write_labels
    from medseg.labels import DEFAULT_LABEL_MAP, LabelMap

    image, labels = small
    d = tmp_path_factory.mktemp("study")
    vol = image.with_array(image.array[:1], frame_times_s=None)
    _save_image(vol, d / "img.nii.gz")
    acdc = DEFAULT_LABEL_MAP.subset(["lv", "myo", "rv"]).remap(labels[:1], LabelMap.parse(ACDC))
    write_labels(acdc, vol, d / "ref.nii.gz", ACDC)
    nib.save(nib.load(str(d / "ref.nii.gz")), str(d / "plain.nii.gz"))  # the same voxels, no sidecar
    return d


def _dice(a, b) -> float:
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


# -- 1. --prompts-from takes the map the reference's sidecar names ---------------------------------
def test_segment_prompts_from_labels_medseg_wrote_needs_no_label_map(study, small, tmp_path, one_thread):
    """An M&Ms-2 user's labels, written by medseg with ACDC's values: `segment --prompts-from`
    said "needs --label-map" though their sidecar names the map (measure reads it). The map's
    la, which the labels do not hold, is neither prompted nor an error."""
    out = tmp_path / "seg.nii.gz"
    assert run_cli(["segment", str(study / "img.nii.gz"), "-o", str(out), "--prompts-from", str(study / "ref.nii.gz"), "--key-slice"]) == 0
    side = json.loads((tmp_path / "seg.json").read_text())
    assert side["label_map"] == {"lv": 3, "myo": 2, "rv": 1}  # the reference's values, as --label-map ACDC gives them; no la
    seg = np.asanyarray(nib.load(str(out)).dataobj)
    ref = np.asanyarray(nib.load(str(study / "ref.nii.gz")).dataobj)
    assert _dice(seg == 3, ref == 3) > 0.75 and _dice(seg == 1, ref == 1) > 0.6  # lv is lv, rv is rv


def test_labels_naming_no_map_still_need_label_map(study, tmp_path, capsys):
    out = tmp_path / "seg.nii.gz"
    assert run_cli(["segment", str(study / "img.nii.gz"), "-o", str(out), "--prompts-from", str(study / "plain.nii.gz")]) == 1
    said = capsys.readouterr().err
    assert "--prompts-from needs --label-map" in said and "plain.nii.gz names none" in said and "Traceback" not in said
    assert not out.exists()


def test_a_broken_sidecar_of_the_reference_is_named(study, tmp_path, capsys):
    shutil.copy(study / "plain.nii.gz", tmp_path / "ref.nii.gz")
    (tmp_path / "ref.json").write_text('{"label_map": {"lv": 3,')  # cut short
    assert run_cli(["segment", str(study / "img.nii.gz"), "-o", str(tmp_path / "seg.nii.gz"), "--prompts-from", str(tmp_path / "ref.nii.gz")]) == 1
    said = capsys.readouterr().err
    assert "ref.json beside the labels is not valid JSON" in said and "give --label-map" in said
    assert not (tmp_path / "seg.nii.gz").exists()


def test_a_sidecar_map_naming_no_value_the_labels_hold_is_refused(study, small):
    from medseg.errors import LabelMapError
    from medseg.io import read_volume
    from medseg.prompt_file import study_prompts

    vol = read_volume(study / "img.nii.gz")
    arr = np.asanyarray(nib.load(str(study / "ref.nii.gz")).dataobj)
    from medseg.prompt_file import reference_label_map

    with pytest.raises(LabelMapError, match="hold none of the values their sidecar ref.json names"):
        reference_label_map(study / "ref.nii.gz", np.where(arr > 0, 9, 0))
    prompts = study_prompts(vol, None, study / "ref.nii.gz", None, key_slice=True)
    assert {p.structure for p in prompts.prompts} == {"lv", "myo", "rv"} and prompts.label_map.to_string() == "lv=3,myo=2,rv=1"


def test_batch_prompts_from_labels_medseg_wrote_needs_no_label_map(study, tmp_path, one_thread):
    cases = tmp_path / "cases"
    cases.mkdir()
    shutil.copy(study / "img.nii.gz", cases / "c1.nii.gz")
    for name in ("nii.gz", "json"):
        shutil.copy(study / f"ref.{name}", cases / f"c1_gt.{name}")
    out = tmp_path / "out"
    assert run_cli(["batch", str(cases), "-o", str(out), "--prompts-from", str(cases), "--key-slice"]) == 0
    assert json.loads((out / "c1.json").read_text())["label_map"] == {"lv": 3, "myo": 2, "rv": 1}


def test_batch_references_naming_no_map_still_need_label_map(study, tmp_path, capsys):
    cases = tmp_path / "cases"
    cases.mkdir()
    shutil.copy(study / "img.nii.gz", cases / "c1.nii.gz")
    shutil.copy(study / "plain.nii.gz", cases / "c1_gt.nii.gz")
    assert run_cli(["batch", str(cases), "-o", str(tmp_path / "out"), "--prompts-from", str(cases)]) == 1
    said = capsys.readouterr().err
    assert "--prompts-from needs --label-map" in said and "labels with a medseg sidecar JSON" in said
    assert not (tmp_path / "out").exists()


# -- 2. which folder --adapter NAME found -----------------------------------------------------------
@pytest.fixture()
def user_adapter(tmp_path, monkeypatch):
    """A user's adapter in $MEDSEG_HOME/adapters named as a shipped one (cmr-lge)."""
    from medseg.models.registry import asset_dirs

    shipped = next(d / "cmr-lge" for d in asset_dirs("adapters") if (d / "cmr-lge").is_dir())
    home = tmp_path / "home"
    shutil.copytree(shipped, home / "adapters" / "cmr-lge")
    monkeypatch.setenv("MEDSEG_HOME", str(home))
    return home / "adapters" / "cmr-lge", shipped


def test_segment_says_which_folder_the_adapter_name_found(study, tmp_path, user_adapter, monkeypatch, capsys):
    import medseg.models
    import medseg.segment
    from medseg.errors import MedsegError

    def stop(*a, **k):
        raise MedsegError("not segmented in this test")

    monkeypatch.setattr(medseg.models, "load_model", lambda *a, **k: object())  # the line follows a load that worked
    monkeypatch.setattr(medseg.segment, "segment_volume", stop)
    assert run_cli(["segment", str(study / "img.nii.gz"), "-o", str(tmp_path / "seg.nii.gz"), "--prompts-from", str(study / "ref.nii.gz"),
                    "--adapter", "cmr-lge"]) == 1
    said = capsys.readouterr().err.replace("\n", "")
    mine, shipped = user_adapter
    assert f"adapter cmr-lge: {mine.resolve()} ($MEDSEG_HOME/adapters; it hides the shipped {shipped})" in said


def test_batch_says_which_folder_the_adapter_name_found_once(tmp_path, user_adapter, capsys):
    (tmp_path / "empty").mkdir()
    assert run_cli(["batch", str(tmp_path / "empty"), "-o", str(tmp_path / "out"), "--auto", "--adapter", "cmr-lge"]) == 1
    said = capsys.readouterr().err.replace("\n", "")
    mine, _ = user_adapter
    assert said.count(f"adapter cmr-lge: {mine.resolve()} ($MEDSEG_HOME/adapters; it hides the shipped") == 1


def test_a_shipped_adapter_is_said_to_be_shipped(monkeypatch):
    from medseg.adapters import adapter_origin

    monkeypatch.delenv("MEDSEG_HOME", raising=False)
    text = adapter_origin("cmr-lge")
    assert text.startswith("adapter cmr-lge: ") and text.endswith("(shipped)")


# -- 3. batch --measure --no-basal-rule ------------------------------------------------------------
def _ct_like_labels(tmp_path, name: str):
    """8 axial slices: the LV on 1-7, its myocardium on 1-5 only (the rule trims 6 and 7)."""
    from medseg.io import Volume, write_labels
    from medseg.io.volume import affine_from_spacing

    lab = np.zeros((8, 40, 40), np.uint8)
    yy, xx = np.mgrid[:40, :40]
    r = np.hypot(yy - 20, xx - 20)
    lab[1:6][:, (r >= 6) & (r < 9)] = 2
    lab[1:8][:, r < 6] = 1
    lab[7][(r >= 9) & (r < 13)] = 4
    image = Volume(np.zeros((1, *lab.shape), np.float32), affine_from_spacing((1.0, 1.0, 1.0)), modality="CT")
    write_labels(lab, image, tmp_path / name, "lv=1,myo=2,la=4")
    return lab


@pytest.mark.parametrize("basal_rule", [True, False])
def test_batch_measure_applies_the_basal_rule_as_chosen(tmp_path, basal_rule):
    from medseg.batch import BatchOptions
    from medseg.batch.cohort import _measure

    lab = _ct_like_labels(tmp_path, "c1.nii.gz")
    got = _measure(tmp_path / "c1.nii.gz", BatchOptions(out_dir=str(tmp_path), measure=True, basal_rule=basal_rule), "c1")
    lv = got["cohort_row"]["volumes_ml.lv"]
    if basal_rule:
        assert lv < (lab == 1).sum() * 1e-3 and "basal_rule_off" not in got["cohort_row"]["flags"]
    else:
        assert lv == pytest.approx((lab == 1).sum() * 1e-3) and "basal_rule_off" in got["cohort_row"]["flags"]


def test_batch_measure_of_an_ed_es_study_applies_the_basal_rule_as_chosen(tmp_path):
    from medseg.batch.cohort import stack_study_rows

    lab = _ct_like_labels(tmp_path, "p1_ED.nii.gz")
    _ct_like_labels(tmp_path, "p1_ES.nii.gz")
    results = [{"case": f"p1_{ph}", "status": "ok", "output": str(tmp_path / f"p1_{ph}.nii.gz")} for ph in ("ED", "ES")]
    (ruled,) = stack_study_rows(results)
    (every,) = stack_study_rows(results, (), basal_rule=False)
    assert every["cohort_row"]["lv.edv_ml"] == pytest.approx((lab == 1).sum() * 1e-3)
    assert every["cohort_row"]["lv.edv_ml"] > ruled["cohort_row"]["lv.edv_ml"]
    assert "basal_rule_off" in every["cohort_row"]["flags"] and "basal_rule_off" not in ruled["cohort_row"]["flags"]


def test_batch_no_basal_rule_reaches_the_run_and_needs_measure(tmp_path, monkeypatch, capsys):
    import medseg.batch

    seen = {}

    def fake_run(cases, options, **kw):
        seen["options"] = options
        return []

    (tmp_path / "in").mkdir()
    assert run_cli(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--auto", "--no-basal-rule"]) == 1
    assert "--no-basal-rule is a measurement setting: add --measure" in capsys.readouterr().err
    from medseg.io import Volume
    from medseg.io.volume import affine_from_spacing

    _save_image(Volume(np.zeros((1, 3, 8, 8), np.float32), affine_from_spacing((1.0, 1.0, 1.0))), tmp_path / "in" / "c1.nii.gz")
    monkeypatch.setattr(medseg.batch, "run_batch", fake_run)
    run_cli(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--auto", "--measure", "--no-basal-rule"])
    assert seen["options"].basal_rule is False


def test_napari_measure_logic_takes_the_basal_rule_choice(tmp_path):
    from medseg_napari._measure import measure_labels

    from medseg.io import read_label_volume

    lab = _ct_like_labels(tmp_path, "lab.nii.gz")
    like = read_label_volume(tmp_path / "lab.nii.gz")
    ruled = measure_labels(lab, like, "lv=1,myo=2,la=4")
    every = measure_labels(lab, like, "lv=1,myo=2,la=4", basal_rule=False)
    assert every["volumes_ml"]["lv"] == pytest.approx((lab == 1).sum() * 1e-3) and every["volumes_ml"]["lv"] > ruled["volumes_ml"]["lv"]
    assert [f["severity"] for f in every["flags"] if f["code"] == "basal_rule_off"] == ["info"]
    assert not any(f["code"] == "basal_rule_off" for f in ruled["flags"])


# -- 4. batch says when one-frame reference labels prompt every frame of a cine -------------------------
def test_batch_notes_a_one_frame_reference_on_a_cine(small, tmp_path, one_thread, capsys):
    from medseg.io import write_labels

    image, labels = small
    cases = tmp_path / "cases"
    cases.mkdir()
    _save_image(image, cases / "c1.nii.gz")
    write_labels(labels[:1], image.with_array(image.array[:1], frame_times_s=None), cases / "c1_gt.nii.gz", "lv=1,myo=2,rv=3")
    out = tmp_path / "out"
    args = ["batch", str(cases), "-o", str(out), "--prompts-from", str(cases), "--key-slice", "--label-map", "lv=1,myo=2,rv=3"]
    assert run_cli(args) == 0
    said = capsys.readouterr().err.replace("\n", "")
    assert "note: the reference labels c1_gt.nii.gz are one frame and the image has 2: their boxes prompt every frame alike" in said
    assert said.count("one frame and the image has 2") == 1
    row = json.loads((out / "summary.json").read_text())["cases"][0]
    assert "one frame and the image has 2" in row["prompt_note"]
    assert run_cli([*args, "--resume"]) == 0  # skipped: its summary row still says it
    assert "one frame and the image has 2" in json.loads((out / "summary.json").read_text())["cases"][0]["prompt_note"]


def test_batch_says_nothing_for_a_reference_of_every_frame(small, tmp_path):
    from medseg.io import write_labels
    from medseg.labels import LabelMap
    from medseg.prompt_file import one_frame_reference_note, prompts_from_labels

    image, labels = small
    write_labels(labels, image, tmp_path / "all.nii.gz", "lv=1,myo=2,rv=3")
    write_labels(labels[:1], image.with_array(image.array[:1], frame_times_s=None), tmp_path / "one.nii.gz", "lv=1,myo=2,rv=3")
    prompts = prompts_from_labels(labels, LabelMap.parse("lv=1,myo=2,rv=3"), key_slice=True)
    assert one_frame_reference_note(image, tmp_path / "all.nii.gz", prompts) is None
    assert one_frame_reference_note(image, tmp_path / "one.nii.gz", prompts).startswith("the reference labels one.nii.gz are one frame")
