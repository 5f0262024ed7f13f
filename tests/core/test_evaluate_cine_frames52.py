"""``medseg evaluate`` with a cine image and one-frame references (ACDC's ``_4d`` cine with its
``frameNN_gt`` labels): a ``frame`` column scores that frame of the image (and of a cine
prediction); without it the pair is refused, not the reference copied to every frame (which
scored frame 0 as ED and as ES: ESV = EDV, LVEF error 13.7 points where the true one was 1.1)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli
from medseg.errors import GeometryError, MedsegError
from medseg.evaluation import evaluate_pairs
from medseg.pairs import read_pairs

SPEC = "lv=1,myo=2,rv=3"


@pytest.fixture(scope="module")
def cine(tmp_path_factory):
    """A 4-frame cine (ED, ES not frame 0), its frames as 3-D images, one-frame references of ED
    and ES, and a prediction (the reference with the ES LV eroded by one pixel: ESV smaller, so
    the LVEF and the Dice errors are not 0) as a cine and as 3-D frames."""
    from scipy import ndimage

    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=4, n_slices=6, shape=(96, 96), spacing=(10.0, 1.5, 1.5), seed=5)
    lm = ph.label_map.subset(["lv", "myo", "rv"])
    lv = (ph.labels == lm["lv"]).sum(axis=(1, 2, 3))
    ed, es = int(lv.argmax()), int(lv.argmin())
    assert ed != es
    pred = ph.labels.copy()
    for z in range(pred.shape[1]):
        m = pred[es, z] == lm["lv"]
        pred[es, z][m & ~ndimage.binary_erosion(m)] = lm["myo"]
    d = tmp_path_factory.mktemp("cine52")
    (d / "pred").mkdir()
    img = ph.image
    nib.save(nib.Nifti1Image(medseg_to_nifti(img.array.astype(np.float32), 4), img.affine), str(d / "p1.nii.gz"))
    write_labels(pred, img, d / "pred" / "p1.nii.gz", lm)
    for phase, t in (("ED", ed), ("ES", es)):
        vol = img.with_array(img.array[t : t + 1], frame_times_s=None)
        nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(d / f"p1_{phase}.nii.gz"))
        write_labels(ph.labels[t : t + 1], vol, d / f"p1_{phase}_gt.nii.gz", lm)
        write_labels(pred[t : t + 1], vol, d / f"p1_{phase}_pred.nii.gz", lm)
    return d, ed, es


def _csv(d, name, rows):
    (d / name).write_text("\n".join(rows) + "\n")
    return d / name


def _scores(result):
    """(case, phase) -> Dice per structure, and the clinical errors of the summary."""
    dice = {(c["case"], c["phase"], n): v for c in result["cases"] for n, v in c["dice"].items()}
    s = result["summary"]
    return dice, {k: s[k] for k in ("lvef_mae", "edv_mae_ml", "lv_mass_mae_g")}


def _frames_own(d):
    """The frames' own 3-D images, references and predictions: what the cine rows must equal."""
    rows = ["image,label,case,phase,prediction"] + [f"p1_{p}.nii.gz,p1_{p}_gt.nii.gz,p1,{p},p1_{p}_pred.nii.gz" for p in ("ED", "ES")]
    return evaluate_pairs(read_pairs(_csv(d, "own.csv", rows)), SPEC, None, None)


def test_one_frame_reference_of_a_cine_without_frame_is_refused(cine):
    d, ed, es = cine
    rows = ["image,label,case,phase,prediction", "p1.nii.gz,p1_ED_gt.nii.gz,p1,ED,pred/p1.nii.gz",
            "p1.nii.gz,p1_ES_gt.nii.gz,p1,ES,pred/p1.nii.gz"]
    with pytest.raises(GeometryError, match=r"have 1 frame and the image \(p1\.nii\.gz\) has 4: add a 'frame' column .*0 to 3"):
        evaluate_pairs(read_pairs(_csv(d, "noframe.csv", rows)), SPEC, None, None)


def test_frame_column_scores_that_frame_as_its_own_3d_image(cine):
    """One-frame predictions (3-D) paired with the cine + frame: Dice and LVEF/EDV/mass errors
    those of the frames' own 3-D images; the LVEF error is that of the eroded ES, not 0."""
    d, ed, es = cine
    rows = ["image,label,case,phase,frame,prediction", f"p1.nii.gz,p1_ED_gt.nii.gz,p1,ED,{ed},p1_ED_pred.nii.gz",
            f"p1.nii.gz,p1_ES_gt.nii.gz,p1,ES,{es},p1_ES_pred.nii.gz"]
    got = evaluate_pairs(read_pairs(_csv(d, "frame.csv", rows)), SPEC, None, None)
    want = _frames_own(d)
    (dice, clin), (dice_w, clin_w) = _scores(got), _scores(want)
    assert dice == pytest.approx(dice_w) and clin == pytest.approx(clin_w)
    assert clin["lvef_mae"] > 0.5 and dice[("p1", "ES", "lv")] < 1.0 and dice[("p1", "ED", "lv")] == 1.0
    assert [c["frame"] for c in got["cases"]] == [ed, es]


def test_frame_column_with_a_predicted_cine_folder(cine, tmp_path):
    """``--predicted`` a folder holding the prediction as a cine: its frame of each row is scored."""
    d, ed, es = cine
    rows = ["image,label,case,phase,frame", f"p1.nii.gz,p1_ED_gt.nii.gz,p1,ED,{ed}", f"p1.nii.gz,p1_ES_gt.nii.gz,p1,ES,{es}"]
    out = tmp_path / "r.json"
    assert run_cli(["evaluate", "--pairs", str(_csv(d, "cli.csv", rows)), "--label-map", SPEC, "--predicted", str(d / "pred"),
                    "-o", str(out)]) == 0
    got = json.loads(out.read_text())
    (dice, clin), (dice_w, clin_w) = _scores(got), _scores(_frames_own(d))
    assert dice == pytest.approx(dice_w) and clin == pytest.approx(clin_w) and clin["lvef_mae"] > 0.5


@pytest.mark.parametrize("cell, match", [("4", r"frame 4 of p1\.nii\.gz, which has 4 frame\(s\) \(allowed: 0 to 3\)"),
                                         ("-1", r"frame must be a frame number .* got '-1'"), ("ES", r"got 'ES'")])
def test_bad_frame_cells_are_refused(cine, cell, match):
    d = cine[0]
    rows = ["image,label,case,phase,frame,prediction", f"p1.nii.gz,p1_ED_gt.nii.gz,p1,ED,{cell},pred/p1.nii.gz"]
    with pytest.raises(MedsegError, match=match):
        evaluate_pairs(read_pairs(_csv(d, "bad.csv", rows)), SPEC, None, None)


def test_grid_message_says_what_to_do_for_cine_labels_on_one_frame():
    from medseg.io import check_same_grid
    from medseg.io.volume import Volume

    img = Volume(np.zeros((1, 2, 4, 4), np.float32), np.eye(4))
    lab = Volume(np.zeros((2, 2, 4, 4), np.uint8), np.eye(4))
    with pytest.raises(GeometryError, match=r"labels have 2 frames but the image has 1 \(give the cine they segment as the image"):
        check_same_grid(img, lab, "labels")


def test_frame_column_with_the_model_on_the_cine(cine, tmp_path):
    """``--prompt box`` on the cine + frame: the model segments that frame alone, prompted from
    its reference; Dice and clinical errors as for the frames' own 3-D images (before: every
    frame of the cine segmented with the ED (or ES) reference's boxes and scored against it)."""
    d, ed, es = cine
    results = []
    for name, rows in (("m_cine.csv", ["image,label,case,phase,frame", f"p1.nii.gz,p1_ED_gt.nii.gz,p1,ED,{ed}",
                                       f"p1.nii.gz,p1_ES_gt.nii.gz,p1,ES,{es}"]),
                       ("m_own.csv", ["image,label,case,phase"] + [f"p1_{p}.nii.gz,p1_{p}_gt.nii.gz,p1,{p}" for p in ("ED", "ES")])):
        out = tmp_path / f"{name}.json"
        assert run_cli(["evaluate", "--pairs", str(_csv(d, name, rows)), "--label-map", SPEC, "--prompt", "box", "-o", str(out)]) == 0
        results.append(_scores(json.loads(out.read_text())))
    (dice, clin), (dice_w, clin_w) = results
    assert dice == pytest.approx(dice_w, abs=1e-6) and clin == pytest.approx(clin_w, abs=1e-6, nan_ok=True)


def test_adapt_reads_a_cine_pair_as_evaluate_does(cine):
    """`adapt` / `train --pairs` read pairs by read_labelled_pair, which copied one-frame labels to
    every frame of a cine image (ED's labels taught on the ES image): refused without a frame
    column; with it, that frame of the image and its labels alone."""
    from medseg.adapt import read_labelled_pair
    from medseg.labels import LabelMap

    d, ed, es = cine
    lm = LabelMap.parse(SPEC)
    rows = ["image,label,case,phase", "p1.nii.gz,p1_ES_gt.nii.gz,p1,ES"]
    (pair,) = read_pairs(_csv(d, "adapt_noframe.csv", rows))
    with pytest.raises(GeometryError, match="add a 'frame' column"):
        read_labelled_pair(pair, lm)
    (pair,) = read_pairs(_csv(d, "adapt_frame.csv", ["image,label,case,phase,frame", f"p1.nii.gz,p1_ES_gt.nii.gz,p1,ES,{es}"]))
    vol, norm, lab, held = read_labelled_pair(pair, lm)
    (own,) = read_pairs(_csv(d, "adapt_own.csv", ["image,label,case,phase", "p1_ES.nii.gz,p1_ES_gt.nii.gz,p1,ES"]))
    vol_own, norm_own, lab_own, _ = read_labelled_pair(own, lm)
    assert vol.n_frames == 1 and np.array_equal(lab, lab_own) and np.allclose(norm, norm_own) and held == {"lv", "myo", "rv"}


def test_two_frames_of_one_reference_are_two_pairs_and_a_pack_knows_its_frames(cine, tmp_path):
    """Rows of one cine and one all-frames reference differing by their frame were refused as
    repeats ("each would be counted twice"); `train --pairs` took a pack made for frame 2 as
    the pack of the same pairs given frame 4 (its signature named the files only)."""
    from medseg.training.pairs_pack import signature

    d, ed, es = cine
    rows = ["image,label,case,frame", f"p1.nii.gz,pred/p1.nii.gz,p1,{ed}", f"p1.nii.gz,pred/p1.nii.gz,p1,{es}"]
    pairs = read_pairs(_csv(d, "two_frames.csv", rows))
    assert [p.frame for p in pairs] == [ed, es]
    lm = {"lv": 1, "myo": 2, "rv": 3}
    from medseg.labels import LabelMap

    one = read_pairs(_csv(d, "one_frame.csv", rows[:2]))
    other = read_pairs(_csv(d, "other_frame.csv", [rows[0], rows[2]]))
    assert signature(one, [], LabelMap.parse(lm)) != signature(other, [], LabelMap.parse(lm))
    plain = read_pairs(_csv(d, "plain.csv", ["image,label,case", "p1_ED.nii.gz,p1_ED_gt.nii.gz,p1"]))
    assert signature(plain, [], LabelMap.parse(lm))[0] == [[str(plain[0].image), str(plain[0].label)]]  # as before: older runs resume
