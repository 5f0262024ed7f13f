"""The M&Ms-2 user's workflow (labels 1 LV, 2 myocardium, 3 RV; short axis and a long-axis
4-chamber view at ED and ES, named ``001_SA_ED``, ``001_LA_ES``, ...): synthetic views first, then
subject 001's expert labels (skipped when ../shared/data is absent), each number checked against
one computed here from the labels with nibabel + numpy. Not measurement, but of the same user:
`evaluate` with another data set's label map, and one-frame ED labels prompting a cine."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.phantoms import echo_apical_phantom

MNMS_MAP = "lv=1,myo=2,rv=3"


def _la_view(phase: str, spacing: float = 0.8) -> np.ndarray:
    """(Y, X) labels (lv=1, myo=2, rv=3) of a 4-chamber phantom's ED or ES frame."""
    ph = echo_apical_phantom("a4c", n_frames=8, seed=4, spacing=spacing)
    lab = ph.labels[ph.info[f"{phase.lower()}_frame"], 0]
    return np.where(np.isin(lab, (1, 2, 3)), lab, 0).astype(np.uint8)


def _case(tmp_path, case: str, lab: np.ndarray, spacing: float = 0.8) -> dict:
    """A batch result: one long-axis MR view's labels as `medseg batch` writes them (with sidecar)."""
    from medseg.io import Volume, write_labels

    like = Volume(np.zeros((1, 1, *lab.shape), np.float32), np.diag([spacing, spacing, 1.0, 1.0]), modality="MR")
    out = tmp_path / f"{case}.nii.gz"
    write_labels(lab, like, out, MNMS_MAP)
    return {"case": case, "status": "ok", "output": str(out), "input": str(tmp_path / f"{case}.nii.gz")}


def test_batch_long_axis_ed_es_views_get_their_study_row(tmp_path):
    """`medseg batch --measure` on an M&Ms-2 folder: the study row of 001_LA_ED / 001_LA_ES said
    "not measured together: ED and ES are not two stacks on one grid" (they are one view each, on
    one grid), where `medseg measure --ed 001_LA_ED --es 001_LA_ES` gives single-plane disks."""
    from medseg.batch import stack_study_rows
    from medseg.measure.echo import measure_echo

    ed, es = _la_view("ED"), _la_view("ES")
    results = [_case(tmp_path, "001_LA_ED", ed), _case(tmp_path, "001_LA_ES", es)]
    row = {r["case"]: r for r in stack_study_rows(results)}["001_LA"]
    assert not row.get("measure_note"), row.get("measure_note")
    got = row["cohort_row"]
    want = measure_echo(ed, es, label_map=MNMS_MAP, spacing_a4c_mm=(0.8, 0.8))
    assert got["method"] == "single_plane_disks_a4c" == want["method"]
    for key in ("edv_ml", "esv_ml", "ef_pct"):
        assert got[f"lv.{key}"] == pytest.approx(want["lv"][key], abs=1e-3)
    assert got["phases"] == "001_LA_ED.nii.gz 001_LA_ES.nii.gz" and "views" not in got
    # each view's own case points at its study's row
    from medseg.batch import BatchOptions
    from medseg.batch.cohort import _measure

    note = _measure(tmp_path / "001_LA_ED.nii.gz", BatchOptions(out_dir=tmp_path, measure=True), "001_LA_ED")["measure_note"]
    assert note.startswith("one view: measured in the row of its study 001_LA")


def test_evaluate_and_prompts_from_refuse_a_label_map_that_reads_the_rv_as_the_lv(tmp_path):
    """`medseg evaluate` with ACDC's map (lv=3, rv=1) on M&Ms labels (lv=1, rv=3) scored the RV as
    the LV (Dice 0.94 on subject 001), reported an LV EDV error of 0 mL and no LVEF error, where
    `medseg measure` refuses those labels; `segment --prompts-from` prompted and `adapt` taught the
    RV as the LV. Now one line asks whether the map is right."""
    import nibabel as nib

    from medseg.errors import LabelMapError
    from medseg.evaluation import evaluate_pairs
    from medseg.io.geometry import medseg_to_nifti
    from medseg.labels import LabelMap
    from medseg.pairs import Pair
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=2, n_slices=6, shape=(64, 64), spacing=(10.0, 2.5, 2.5))
    vol = ph.image.with_array(ph.image.array[:1], frame_times_s=None)
    nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(tmp_path / "s1_ED.nii.gz"))
    lab = medseg_to_nifti(ph.labels[:1].astype(np.uint8), 3)  # lv=1, myo=2, rv=3, no sidecar: as M&Ms-2 ships them
    nib.save(nib.Nifti1Image(lab, vol.affine), str(tmp_path / "s1_ED_gt.nii.gz"))
    pair = Pair(tmp_path / "s1_ED.nii.gz", tmp_path / "s1_ED_gt.nii.gz", "s1", "ED", prediction=tmp_path / "s1_ED_gt.nii.gz")
    with pytest.raises(LabelMapError, match=r"case s1: the LV \(label 3\) is inside the myocardium \(label 2\) on no slice") as err:
        evaluate_pairs([pair], LabelMap.parse("lv=3,myo=2,rv=1"), None, None)
    assert "M&Ms: lv=1,myo=2,rv=3" in str(err.value) and "\n" not in str(err.value)
    right = evaluate_pairs([pair], LabelMap.parse(MNMS_MAP), None, None)
    assert right["summary"]["dice"]["lv"] == pytest.approx(1.0)
    # `segment --prompts-from` with that map prompted the RV as the LV (flagged for review only)
    from medseg.io import read_volume
    from medseg.prompt_file import study_prompts

    image = read_volume(tmp_path / "s1_ED.nii.gz")
    with pytest.raises(LabelMapError, match=r"reference labels s1_ED_gt.nii.gz: the LV \(label 3\) is inside the myocardium"):
        study_prompts(image, None, tmp_path / "s1_ED_gt.nii.gz", LabelMap.parse("lv=3,myo=2,rv=1"), key_slice=True)
    assert study_prompts(image, None, tmp_path / "s1_ED_gt.nii.gz", LabelMap.parse(MNMS_MAP), key_slice=True).prompts
    # `adapt` would have taught the RV as the LV
    from medseg.adapt import bank_from_pairs

    with pytest.raises(LabelMapError, match=r"labels of s1: the LV \(label 3\) is inside the myocardium"):
        bank_from_pairs([pair], [], LabelMap.parse("lv=3,myo=2,rv=1"), "cpu")


@pytest.mark.parametrize("ref_frames", [1, 3], ids=["one_frame", "every_frame"])
def test_segment_says_when_one_frame_reference_prompts_every_frame_of_a_cine(tmp_path, capsys, ref_frames):
    """`medseg segment 001_LA_CINE --prompts-from 001_LA_ED_gt` (ED labels, one frame) prompted all
    25 frames with the ED boxes without a word, the ES frames too, where the user meant to prompt
    the ED frame and propagate; a note now says so and how to prompt one frame."""
    import nibabel as nib

    from medseg.cli import run_cli
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=3, n_slices=2, shape=(64, 64), spacing=(10.0, 2.5, 2.5))
    nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 4), ph.image.affine), str(tmp_path / "cine.nii.gz"))
    ref = medseg_to_nifti(ph.labels[:ref_frames].astype(np.uint8), 4 if ref_frames > 1 else 3)
    nib.save(nib.Nifti1Image(ref, ph.image.affine), str(tmp_path / "ref.nii.gz"))
    capsys.readouterr()
    assert run_cli(["segment", str(tmp_path / "cine.nii.gz"), "--prompts-from", str(tmp_path / "ref.nii.gz"), "--label-map", "lv=1,myo=2",
                    "-o", str(tmp_path / "out.nii.gz")]) == 0
    said = " ".join((lambda c: c.out + c.err)(capsys.readouterr()).split())
    assert ("ref.nii.gz are one frame and the image has 3: their boxes prompt every frame alike" in said) == (ref_frames == 1)


# -- subject 001's expert labels (../shared/data/mnms2/001) ----------------------------------------


@pytest.fixture(scope="module")
def mnms(shared_data):
    d = shared_data / "mnms2" / "001"
    if not d.is_dir():
        pytest.skip("mnms2/001 is absent")
    return d


def _counts_ml(path) -> dict[str, float]:
    """mL of each structure by nibabel + numpy: voxel count x |det(affine)| / 1000."""
    import nibabel as nib

    img = nib.load(str(path))
    lab = np.rint(np.asanyarray(img.dataobj)).astype(int)
    voxel = abs(np.linalg.det(img.affine[:3, :3]))
    return {n: float((lab == v).sum() * voxel / 1000) for n, v in (("lv", 1), ("myo", 2), ("rv", 3))}


def test_expert_short_axis_volumes_ef_and_mass_match_nibabel(mnms, tmp_path):
    """`medseg measure --ed --es --label-map lv=1,myo=2,rv=3` on the expert labels: volumes, EF
    and mass equal the voxel counts (no basal slice left out on this subject)."""
    import json

    from medseg.cli import run_cli

    out = tmp_path / "r.json"
    assert run_cli(["measure", "--ed", str(mnms / "001_SA_ED_gt.nii.gz"), "--es", str(mnms / "001_SA_ES_gt.nii.gz"),
                    "--label-map", MNMS_MAP, "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    ed, es = _counts_ml(mnms / "001_SA_ED_gt.nii.gz"), _counts_ml(mnms / "001_SA_ES_gt.nii.gz")
    assert rep["phases"]["ed"]["excluded_basal_slices"] == [] and rep["phases"]["es"]["excluded_basal_slices"] == []
    for s in ("lv", "rv"):
        assert rep[s]["edv_ml"] == pytest.approx(ed[s], rel=1e-6) and rep[s]["esv_ml"] == pytest.approx(es[s], rel=1e-6)
        assert rep[s]["ef_pct"] == pytest.approx(100 * (ed[s] - es[s]) / ed[s], rel=1e-6)
    assert rep["lv_mass_g"] == pytest.approx(1.05 * ed["myo"], rel=1e-6)
    # wall thickness per slice against myocardial area (voxels) / mean of the endo- and epicardial
    # perimeters (exact for an annulus; contours of the masks smoothed by 1 pixel, else the staircase
    # lengthens them ~5 %): 4.3-5.2 mm, within 0.02 mm of medseg's nearest-point means
    import nibabel as nib
    from scipy import ndimage
    from skimage.measure import find_contours

    img = nib.load(str(mnms / "001_SA_ED_gt.nii.gz"))
    lab, px = np.rint(np.asanyarray(img.dataobj)).astype(int), float(np.linalg.norm(img.affine[:3, 0]))
    slices = rep["wall_thickness_mm"]["slices"]
    assert len(slices) >= 6
    for sl in slices:
        s = lab[:, :, sl["slice"]]
        contours = [max(find_contours(ndimage.gaussian_filter(ndimage.binary_fill_holes(m).astype(float), 1.0), 0.5), key=len)
                    for m in (s == 1, (s == 1) | (s == 2))]
        perim = np.mean([np.linalg.norm(np.diff(c, axis=0), axis=1).sum() for c in contours])
        assert sl["mean"] == pytest.approx((s == 2).sum() / perim * px, abs=0.1)


def test_acdc_map_on_mnms_labels_is_refused_naming_both_conventions(mnms, tmp_path, capsys):
    from medseg.cli import run_cli

    out = tmp_path / "r.json"
    assert run_cli(["measure", "--ed", str(mnms / "001_SA_ED_gt.nii.gz"), "--es", str(mnms / "001_SA_ES_gt.nii.gz"),
                    "--label-map", "lv=3,myo=2,rv=1", "-o", str(out)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "is the label map right" in err and "M&Ms: lv=1,myo=2,rv=3" in err and not out.exists()


def test_expert_four_chamber_views_area_length_matches_nibabel(mnms, tmp_path):
    """The long-axis 4-chamber ED/ES labels are measured as one apical view (single-plane disks);
    the area-length volume 8 A^2 / (3 pi L) uses the LV area counted here."""
    import json

    import nibabel as nib
    from skimage.measure import regionprops

    from medseg.cli import run_cli

    out = tmp_path / "r.json"
    assert run_cli(["measure", "--ed", str(mnms / "001_LA_ED_gt.nii.gz"), "--es", str(mnms / "001_LA_ES_gt.nii.gz"),
                    "--label-map", MNMS_MAP, "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["method"] == "single_plane_disks_a4c"
    for phase, key in (("ED", "edv_ml"), ("ES", "esv_ml")):
        img = nib.load(str(mnms / f"001_LA_{phase}_gt.nii.gz"))
        px = np.linalg.norm(img.affine[:3, 0]) * np.linalg.norm(img.affine[:3, 1])
        area = float((np.rint(np.asanyarray(img.dataobj)) == 1).sum() * px)
        length = rep["lengths_mm"][f"a4c_{phase.lower()}"]
        assert rep["lv_area_length"][key] == pytest.approx(8 * area**2 / (3 * np.pi * length) / 1000, rel=1e-6)
        feret = regionprops((np.rint(np.asanyarray(img.dataobj))[:, :, 0] == 1).astype(int))[0].feret_diameter_max
        assert 0.94 < length / (feret * np.sqrt(px)) <= 1.0  # annulus midpoint to apex: 93.8 / 94.9 mm at ED, 71.6 / 74.2 at ES
    assert 50 < rep["lv"]["ef_pct"] < 70 and abs(rep["lv"]["ef_pct"] - rep["lv_area_length"]["ef_pct"]) < 3


def test_heart_rate_for_long_axis_views_is_said_to_go_unused(tmp_path, capsys):
    """`medseg measure --ed 001_LA_ED --es 001_LA_ES --heart-rate 70`: the method of disks gives no
    cardiac output, and the heart rate was dropped without a word (co_l_min absent)."""
    import json

    from medseg.cli import run_cli

    for phase in ("ED", "ES"):
        _case(tmp_path, f"s1_LA_{phase}", _la_view(phase))
    out = tmp_path / "r.json"
    capsys.readouterr()
    assert run_cli(["measure", "--ed", str(tmp_path / "s1_LA_ED.nii.gz"), "--es", str(tmp_path / "s1_LA_ES.nii.gz"),
                    "--heart-rate", "70", "-o", str(out)]) == 0
    said = " ".join((lambda c: c.out + c.err)(capsys.readouterr()).split())
    assert "--heart-rate is not used for one view by the method of disks" in said
    assert json.loads(out.read_text()).get("co_l_min") is None


def test_evaluate_gives_long_axis_view_pairs_their_own_ef_error(tmp_path, capsys):
    """`medseg evaluate` on M&Ms-2's long-axis 001_LA_ED / 001_LA_ES gave Dice only (no clinical
    error: they are no stack); now single-plane disks as `medseg measure --ed --es` gives them, in
    keys of their own, kept out of the short-axis LVEF error and the Bland-Altman agreement."""
    import nibabel as nib
    from scipy import ndimage

    from medseg.cli._app import run_cli
    from medseg.evaluation import evaluate_pairs
    from medseg.io.geometry import medseg_to_nifti
    from medseg.labels import LabelMap
    from medseg.measure.echo import measure_echo
    from medseg.pairs import Pair
    from medseg.phantoms import cine_sax_phantom

    def save(arr, name, spacing):
        nib.save(nib.Nifti1Image(arr.T[..., None] if arr.ndim == 2 else arr, np.diag([spacing, spacing, 8.0, 1.0])), str(tmp_path / name))

    ed, es = _la_view("ED"), _la_view("ES")
    es_pred = es.copy()
    es_pred[(es == 1) & ~ndimage.binary_erosion(es == 1, iterations=2)] = 0  # the model's ES cavity two pixels short
    pairs = []
    for ph, ref, pred in (("ED", ed, ed), ("ES", es, es_pred)):
        save(ref.astype(np.float32), f"001_LA_{ph}.nii.gz", 0.8)
        save(ref, f"001_LA_{ph}_gt.nii.gz", 0.8)
        save(pred, f"001_LA_{ph}_pred.nii.gz", 0.8)
        pairs.append(Pair(tmp_path / f"001_LA_{ph}.nii.gz", tmp_path / f"001_LA_{ph}_gt.nii.gz", "001_LA", ph,
                          prediction=tmp_path / f"001_LA_{ph}_pred.nii.gz"))
    sa = cine_sax_phantom(n_frames=2, n_slices=6, shape=(64, 64), spacing=(10.0, 2.5, 2.5))  # a short-axis pair beside it
    ed_t, es_t = int(sa.info["ed_frame"]), int(sa.info["es_frame"])
    for ph, t in (("ED", ed_t), ("ES", es_t)):
        nib.save(nib.Nifti1Image(medseg_to_nifti(sa.image.array[t:t + 1].astype(np.float32), 3), sa.image.affine), str(tmp_path / f"001_SA_{ph}.nii.gz"))
        lab = medseg_to_nifti(np.where(sa.labels[t:t + 1] <= 3, sa.labels[t:t + 1], 0).astype(np.uint8), 3)
        nib.save(nib.Nifti1Image(lab, sa.image.affine), str(tmp_path / f"001_SA_{ph}_gt.nii.gz"))
        pairs.append(Pair(tmp_path / f"001_SA_{ph}.nii.gz", tmp_path / f"001_SA_{ph}_gt.nii.gz", "001_SA", ph,
                          prediction=tmp_path / f"001_SA_{ph}_gt.nii.gz"))
    res = evaluate_pairs(pairs, LabelMap.parse(MNMS_MAP), None, None)
    s = res["summary"]
    want_pred = measure_echo(ed, es_pred, label_map=MNMS_MAP, spacing_a4c_mm=(0.8, 0.8))["lv"]
    want_ref = measure_echo(ed, es, label_map=MNMS_MAP, spacing_a4c_mm=(0.8, 0.8))["lv"]
    assert want_pred["ef_pct"] - want_ref["ef_pct"] > 2  # the shrunken ES cavity reads a higher EF
    assert s["long_axis_lvef_mae"] == pytest.approx(abs(want_pred["ef_pct"] - want_ref["ef_pct"]), abs=1e-6)
    assert s["long_axis_edv_mae_ml"] == pytest.approx(0.0, abs=1e-9) and s["n_long_axis_studies"] == 1
    assert s["lvef_mae"] == pytest.approx(0.0, abs=1e-9) and s["n_clinical_cases"] == 1  # the short-axis pair alone
    assert s["agreement"]["lvef"]["n"] == 1
    la_ed = next(c for c in res["cases"] if c["case"] == "001_LA" and c["phase"] == "ED")
    assert la_ed["clinical"]["method"] == "single_plane_disks" and "lvef_pred" not in la_ed["clinical"]
    assert la_ed["clinical"]["long_axis_lvef_ref"] == pytest.approx(want_ref["ef_pct"])
    # the CLI says it in a line of its own
    import csv

    with open(tmp_path / "pairs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label", "case", "phase", "prediction"])
        w.writerows([[p.image, p.label, p.case, p.phase, p.prediction] for p in pairs[:2]])
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--label-map", MNMS_MAP, "-o", str(tmp_path / "ev.json")]) == 0
    err = capsys.readouterr().err
    assert "mean absolute error over 1 long-axis ED/ES view (single-plane disks): LVEF" in err
    assert "over 0 ED/ES cases" not in err
