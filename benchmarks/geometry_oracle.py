"""medseg's geometry checked against independent libraries on every real image (BENCHMARKS.md,
"Geometry against SimpleITK and nibabel, real data").

    python benchmarks/geometry_oracle.py [--data ../shared/data] [--sets acdc,mnms2,...]
        [--per-set N] [--write-per-set N] [--tol-mm 0.001] [--json OUT]

Reading: for each image, the world position (RAS mm) medseg gives the 8 corner voxels and a few
interior ones of array[t, z, y, x] (its affine applied to (x, y, z)) against SimpleITK's
``TransformIndexToPhysicalPoint`` (LPS, x and y negated) on the same file or DICOM series
(``ImageSeriesReader`` with GDCM's sorted file names, one cine frame's files at a time), nibabel's
affine for NIfTI, and for DICOM each slice file's ImagePositionPatient / ImageOrientationPatient /
PixelSpacing as PS3.3 C.7.6.2.1.1 places its pixels; and the voxel values, spacing and slice
order. Writing: a blob of three labels at a known voxel written by ``medseg.io.write_labels``
(.nii.gz, .mha, .nrrd, .seg.nrrd) and ``write_dicom_seg`` (DICOM sources), read back with
nibabel / SimpleITK / pydicom (SEG: each frame's ImagePositionPatient and
ReferencedSOPInstanceUID against the source slice) and compared in world coordinates.

A PNG has no geometry: medseg places it where ITK (and so 3D Slicer and ITK-SNAP) does, at LPS
identity (``medseg.io.geometry.RASTER_AFFINE``). Prints one row per check; exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SETS = ("acdc", "mnms2", "mscmr-lge", "sunnybrook", "camus", "siue", "hvsmr")
LABEL_MAP = "lv=1,myo=2,rv=3"
FLIP = np.diag([-1.0, -1.0, 1.0])  # LPS <-> RAS, written here, not taken from medseg


@dataclass
class Row:
    set: str
    case: str
    check: str
    points: int
    max_mm: float
    ok: bool
    note: str = ""
    allow_mm: float = 0.0  # beyond the tolerance: a difference of the other library's that the note explains

    def passed(self, tol: float) -> bool:
        return self.ok and self.max_mm <= tol + self.allow_mm


# -- inputs --------------------------------------------------------------------------------
def cases(data: Path, name: str) -> list[Path]:
    """Every image of a set (label files left out), in a stable order."""
    pick = {
        "acdc": lambda: sorted(data.glob("acdc/training/patient*/patient*_frame??.nii.gz")),
        "mnms2": lambda: sorted(p for p in data.glob("mnms2/*/*.nii.gz") if not p.name.endswith("_gt.nii.gz")),
        "mscmr-lge": lambda: sorted(data.glob("mscmr-lge/*/images/*.nii.gz")),
        "sunnybrook": lambda: sorted(p for p in data.glob("sunnybrook/dicoms/*") if p.is_dir()),
        "camus": lambda: sorted(p for p in data.glob("camus-224/*/*.png") if not p.name.endswith("_gt.png")),
        "siue": lambda: sorted(data.glob("siue-psax-echo/pngs/*.png")),
        "hvsmr": lambda: sorted(data.glob("hvsmr2/images/*.png")),
    }[name]
    return pick()


def spread(items: list, n: int | None) -> list:
    """``n`` items spread evenly over ``items`` (all when ``n`` is None or not smaller)."""
    if n is None or n >= len(items):
        return list(items)
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, n).round().astype(int))]


def sample_points(zyx_shape: tuple[int, int, int]) -> np.ndarray:
    """(N, 3) integer (z, y, x) indices: the 8 corner voxels, the centre and three interior ones."""
    z, y, x = (n - 1 for n in zyx_shape)
    pts = [(k, j, i) for k in (0, z) for j in (0, y) for i in (0, x)]
    pts += [(z // 2, y // 2, x // 2), (z // 3, y // 4, (2 * x) // 3), ((2 * z) // 3, (3 * y) // 4, x // 5), (z, y // 3, 1 % (x + 1))]
    return np.unique(np.array(pts, dtype=int), axis=0)


def worst(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.linalg.norm(np.asarray(a, float) - np.asarray(b, float), axis=1))) if len(a) else 0.0


def sitk_world(img, xyz: np.ndarray) -> np.ndarray:
    """RAS mm of integer (x, y, z[, t]) indices by SimpleITK (LPS, x and y negated); a 2-D image's z is 0."""
    d = img.GetDimension()
    pts = []
    for idx in np.asarray(xyz, dtype=int):
        p = img.TransformIndexToPhysicalPoint([int(v) for v in idx[:d]] + [0] * max(0, d - len(idx)))
        pts.append((list(p) + [0.0])[:3])
    return np.asarray(pts, dtype=float) @ FLIP


def medseg_world(vol, zyx: np.ndarray) -> np.ndarray:
    return vol.index_to_world(np.asarray(zyx, dtype=float))


# -- reading -------------------------------------------------------------------------------
def nibabel_affine(img) -> tuple[np.ndarray, str]:
    """nibabel's affine; where its axis lengths are not the header's voxel size (ACDC's unit sform),
    its directions and origin with pixdim's lengths (as ITK reads such a file), and a note."""
    aff = np.asarray(img.affine, dtype=float)
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)  # 2 for a 2-D file
    n = len(zooms)
    norms = np.linalg.norm(aff[:3, :n], axis=0)
    if np.allclose(norms, zooms, rtol=1e-3):
        return aff, ""
    fixed = aff.copy()
    fixed[:3, :n] = aff[:3, :n] / norms * zooms
    return fixed, f"nibabel's affine has axis lengths {np.round(norms, 4).tolist()}, pixdim {np.round(zooms, 4).tolist()}: pixdim used"


def check_nifti(set_name: str, path: Path) -> list[Row]:
    import nibabel as nib
    import SimpleITK as sitk

    from medseg.io import read_volume

    vol = read_volume(path)
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    data = data.reshape(data.shape + (1,) * (4 - data.ndim))  # [x, y, z, t]
    own = data.transpose(3, 2, 1, 0)  # written here: (t, z, y, x)
    zyx = sample_points(vol.grid_shape)
    xyz1 = np.c_[zyx[:, ::-1], np.ones(len(zyx))]
    aff, note = nibabel_affine(img)
    rows = [Row(set_name, path.name, "read nibabel", len(zyx), worst(medseg_world(vol, zyx), (aff @ xyz1.T).T[:, :3]),
                bool(np.array_equal(own, vol.array)), note)]
    s = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(s).reshape(vol.shape)
    # scaled (scl_slope) voxels: ITK computes them in float32, nibabel and medseg in float64
    same = np.array_equal(arr, vol.array) if arr.dtype == vol.array.dtype else np.allclose(arr, vol.array, rtol=1e-6, atol=1e-6)
    t_last = vol.n_frames - 1
    pts = np.c_[zyx[:, ::-1], np.full(len(zyx), t_last)]
    dev = worst(medseg_world(vol, zyx), sitk_world(s, pts))
    sp = np.asarray(s.GetSpacing()[:3])[::-1]
    sp = np.r_[1.0, sp] if len(sp) == 2 else sp
    sp_ok = bool(np.allclose(vol.spacing, sp, rtol=1e-5))
    notes = ([] if sp_ok else [f"spacing {vol.spacing} vs {tuple(sp)}"]) + ([] if arr.dtype == vol.array.dtype else
                                                                          [f"values {vol.array.dtype} vs ITK's {arr.dtype}: within 1e-6"])
    rows.append(Row(set_name, path.name, "read SimpleITK", len(zyx), dev, bool(same) and sp_ok, "; ".join(notes)))
    return rows


def dicom_header(p: str):
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(p, stop_before_pixels=True)


def standard_world(ds, rows_cols: np.ndarray) -> np.ndarray:
    """RAS mm of pixels (row, column) of one DICOM image by PS3.3 C.7.6.2.1.1:
    P = IPP + column * dx * row_direction + row * dy * column_direction (PixelSpacing = dy, dx)."""
    ipp = np.asarray(ds.ImagePositionPatient, dtype=float)
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    dy, dx = (float(v) for v in ds.PixelSpacing)
    rc = np.asarray(rows_cols, dtype=float)
    lps = ipp + rc[:, 1:2] * dx * iop[:3] + rc[:, 0:1] * dy * iop[3:]
    return lps @ FLIP


def check_dicom(set_name: str, folder: Path) -> list[Row]:
    import SimpleITK as sitk

    from medseg.io import read_volume

    vol = read_volume(folder)
    files = vol.meta["files"]
    zyx = sample_points(vol.grid_shape)
    rows, devs, values_ok, order = [], [], True, set()
    for t in range(vol.n_frames):
        mine = [str(f) for f in files[t]]
        ordered = gdcm_sorted(mine)
        if len(ordered) != vol.n_slices:
            rows.append(Row(set_name, folder.name, "read SimpleITK", 0, float("nan"), False,
                            f"frame {t}: GDCM lists {len(ordered)} of its {vol.n_slices} files"))
            return rows
        z_of = [mine.index(f) for f in ordered]  # GDCM's k -> medseg's z
        order.add("same" if z_of == sorted(z_of) else "reversed" if z_of == sorted(z_of, reverse=True) else "other")
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(ordered)
        s = reader.Execute()
        arr = sitk.GetArrayFromImage(s)
        values_ok &= all(np.array_equal(arr[k], vol.array[t, z]) for k, z in enumerate(z_of))
        k_of = {z: k for k, z in enumerate(z_of)}
        devs.append(worst(medseg_world(vol, zyx), sitk_world(s, np.c_[zyx[:, 2], zyx[:, 1], [k_of[z] for z in zyx[:, 0]]])))
        sp_ok = np.allclose(vol.spacing, np.asarray(s.GetSpacing())[::-1], rtol=1e-4)
        values_ok &= bool(sp_ok)
    allow, why = itk_orthonormalised(s, dicom_header(ordered[0]), vol)
    # ITK's grid starts at its first file, medseg's runs through the slices' mean positions: the two
    # may differ by as much as the files' positions miss one regular grid (IPP written to 0.001 mm)
    uneven = max(worst(medseg_world(vol, [[z, 0, 0]]), standard_world(dicom_header(str(f)), [[0, 0]]))
                 for row in files for z, f in enumerate(row))
    rows.append(Row(set_name, folder.name, "read SimpleITK", len(zyx) * vol.n_frames, max(devs), values_ok,
                    f"{vol.n_frames} frames x {vol.n_slices} slices; GDCM slice order vs medseg: {'/'.join(sorted(order))}; "
                    f"slice positions off one regular grid by up to {uneven:.2g} mm (allowed){why}", allow + uneven))
    rows.append(check_dicom_files(set_name, folder, vol))
    rows.append(check_dicom_single(set_name, Path(files[-1][-1])))
    return rows


def check_dicom_single(set_name: str, path: Path) -> Row:
    """One slice file read alone, (1, 1, Y, X), against SimpleITK reading that file."""
    import SimpleITK as sitk

    from medseg.io import read_volume

    vol = read_volume(path)
    s = sitk.ReadImage(str(path))
    zyx = sample_points(vol.grid_shape)
    arr = sitk.GetArrayFromImage(s).reshape(vol.shape)
    ok = bool(np.array_equal(arr, vol.array)) and bool(np.allclose(vol.spacing[1:], s.GetSpacing()[1::-1], rtol=1e-5))
    allow, why = itk_orthonormalised(s, dicom_header(str(path)), vol)
    return Row(set_name, f"{path.parent.name}/{path.name}", "read one file SimpleITK", len(zyx),
               worst(medseg_world(vol, zyx), sitk_world(s, zyx[:, ::-1])), ok, why.lstrip("; "), allow)


def gdcm_sorted(paths: list[str]) -> list[str]:
    """``paths`` (one cine frame's files, one per slice) in the order GDCM sorts them: given a
    whole cine folder, GDCM's sorter meets several images per position and falls back to
    InstanceNumber order, so each frame's files are linked into a folder of their own."""
    import SimpleITK as sitk

    with tempfile.TemporaryDirectory() as tmp:
        links = {}
        for i, p in enumerate(paths):
            link = Path(tmp) / f"{i:05d}.dcm"
            link.symlink_to(Path(p).resolve())
            links[str(link)] = p
        return [links[n] for n in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(tmp)]


def itk_orthonormalised(s, ds, vol) -> tuple[float, str]:
    """How far ITK's in-plane directions move a pixel from where the file's own
    ImageOrientationPatient puts it (the largest in-plane distance times their difference), and a
    note, when ITK made them orthonormal (a file whose row and column cosines are not quite at right
    angles): PS3.3 C.7.6.2.1.1 places pixels with the cosines as written, so the per-file check
    decides; (0, "") when ITK kept them."""
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float).reshape(2, 3)
    mine = iop / np.linalg.norm(iop, axis=1, keepdims=True)
    itk = np.asarray(s.GetDirection(), dtype=float).reshape(3, 3)[:, :2].T
    gap = float(np.max(np.linalg.norm(itk - mine, axis=1)))
    if gap < 1e-6:
        return 0.0, ""
    extent = float(np.hypot(*(np.asarray(vol.grid_shape[1:]) - 1) * np.asarray(vol.spacing[1:])))
    cos = float(mine[0] @ mine[1])
    return gap * extent, (f"; the file's row/column cosines are {np.degrees(np.arccos(cos)):.4f} degrees apart: ITK made them orthonormal "
                          f"(moved by {gap:.2g}), allowed {gap * extent:.2g} mm over the {extent:.0f} mm image")


def check_dicom_files(set_name: str, folder: Path, vol) -> Row:
    """Every slice file of every frame: its corner pixels where PS3.3 C.7.6.2.1.1 puts them against
    medseg's affine at that (z, row, column); the spacing against PixelSpacing; slices ascending
    along the normal (medseg's documented order)."""
    ny, nx = vol.grid_shape[1:]
    rc = np.array([[0, 0], [0, nx - 1], [ny - 1, 0], [ny - 1, nx - 1], [ny // 2, nx // 3]])
    dev, n, notes, ok = 0.0, 0, [], True
    for t in range(vol.n_frames):
        along = []
        for z, f in enumerate(vol.meta["files"][t]):
            ds = dicom_header(str(f))
            zyx = np.c_[np.full(len(rc), z), rc]
            dev = max(dev, worst(medseg_world(vol, zyx), standard_world(ds, rc)))
            n += len(rc)
            ok &= bool(np.allclose(vol.spacing[1:], [float(v) for v in ds.PixelSpacing], rtol=1e-5))
            iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
            along.append(float(np.dot(np.asarray(ds.ImagePositionPatient, dtype=float), np.cross(iop[:3], iop[3:]))))
        if vol.n_slices > 1 and not np.all(np.diff(along) > 0):
            ok, notes = False, notes + [f"frame {t}: slices not ascending along the normal"]
    first, last = (dicom_header(str(vol.meta["files"][0][z])) for z in (0, -1))
    loc = [float(d.get("SliceLocation", "nan") or "nan") for d in (first, last)]
    notes.append(f"z ascends along the normal; SliceLocation {loc[0]:g} -> {loc[1]:g}")
    return Row(set_name, folder.name, "read IPP/IOP per file", n, dev, ok, "; ".join(notes))


def check_raster(set_name: str, path: Path) -> list[Row]:
    import SimpleITK as sitk

    from medseg.io import read_volume
    from medseg.io.volume import luminance

    vol = read_volume(path)
    s = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(s)
    grey = luminance(arr) if s.GetNumberOfComponentsPerPixel() > 1 else arr
    values_ok = grey.shape == vol.array.shape[2:] and bool(np.allclose(grey, vol.array[0, 0], atol=1e-3))
    zyx = sample_points(vol.grid_shape)
    itk = sitk_world(s, zyx[:, ::-1])
    dev = worst(medseg_world(vol, zyx), itk)  # no geometry in the file: both place it at ITK's LPS identity
    return [Row(set_name, path.name, "read SimpleITK", len(zyx), dev, values_ok and not vol.spacing_known,
                "no geometry in the file: medseg and ITK both place it at LPS identity")]


# -- writing -------------------------------------------------------------------------------
def blob(grid: tuple[int, int, int]) -> np.ndarray:
    """(Z, Y, X) labels: 1 at an off-centre voxel, 2 along +x from it, 3 along +y (a flip or a swap of
    any axis moves a label), and 1 on the next slice when there is one."""
    z, y, x = grid
    z0, y0, x0 = (z - 1) // 3, y // 3, x // 4
    lab = np.zeros(grid, dtype=np.uint8)
    lab[z0, y0, x0] = 1
    lab[z0, y0, x0 + 1 : x0 + 4] = 2
    lab[z0, y0 + 1 : y0 + 3, x0] = 3
    if z > 1:
        lab[z0 + 1, y0, x0] = 1
    return lab


def expected(vol, lab: np.ndarray) -> dict[int, np.ndarray]:
    return {int(v): medseg_world(vol, np.argwhere(lab == v)) for v in np.unique(lab) if v}


def compare(found: dict[int, np.ndarray], want: dict[int, np.ndarray]) -> tuple[int, float, bool]:
    """Points, the largest distance between a label's voxels found and wanted (sorted alike), and
    whether the two hold the same labels with as many voxels each."""
    n, dev, ok = 0, 0.0, sorted(found) == sorted(want)
    for v, w in want.items():
        f = found.get(v, np.zeros((0, 3)))
        if len(f) != len(w):
            ok = False
            continue
        key = lambda a: a[np.lexsort(np.round(a, 2).T[::-1])]  # noqa: E731
        dev, n = max(dev, worst(key(f), key(w))), n + len(w)
    return n, dev, ok


def read_back_nibabel(path: Path) -> dict[int, np.ndarray]:
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    data = data.reshape(data.shape[:3] + (-1,))[..., 0] if data.ndim >= 3 else data[..., None]
    aff, _ = nibabel_affine(img)
    return {int(v): (aff @ np.c_[np.argwhere(data == v), np.ones(int((data == v).sum()))].T).T[:, :3]
            for v in np.unique(data) if v}


def read_back_sitk(path: Path) -> dict[int, np.ndarray]:
    import SimpleITK as sitk

    s = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(s)
    return {int(v): sitk_world(s, np.argwhere(arr == v)[:, ::-1]) for v in np.unique(arr) if v}


def read_back_seg(path: Path, vol, frame: int) -> tuple[dict[int, np.ndarray], str]:
    """World positions per segment number of a DICOM SEG, from its own per-frame positions and
    shared orientation and spacing; and what disagrees with the source slices (position, UID)."""
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seg = pydicom.dcmread(str(path))
    shared = seg.SharedFunctionalGroupsSequence[0]
    iop = np.asarray(shared.PlaneOrientationSequence[0].ImageOrientationPatient, dtype=float)
    dy, dx = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    source = {}
    for f in vol.meta["files"][frame]:
        ds = dicom_header(str(f))
        source[str(ds.SOPInstanceUID)] = np.asarray(ds.ImagePositionPatient, dtype=float)
    found: dict[int, list] = {}
    problems = []
    pixels = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    for i, fg in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ipp = np.asarray(fg.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        ref = str(fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        if ref not in source:
            problems.append(f"frame {i + 1} references {ref[-8:]}, no image of frame {frame}")
        elif np.linalg.norm(source[ref] - ipp) > 1e-3:
            problems.append(f"frame {i + 1} at {np.round(ipp, 3).tolist()}, its source slice at {np.round(source[ref], 3).tolist()}")
        rc = np.argwhere(pixels[i])
        lps = ipp + rc[:, 1:2] * dx * iop[:3] + rc[:, 0:1] * dy * iop[3:]
        found.setdefault(int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber), []).append(lps @ FLIP)
    return {k: np.concatenate(v) for k, v in found.items()}, "; ".join(problems[:2])


def check_writes(set_name: str, vol, case: str, work: Path) -> list[Row]:
    """Labels written in each format read back by another library, in world coordinates: where
    medseg puts those voxels of the image, and for NIfTI labels of a NIfTI image read by ITK,
    where ITK puts them in the image (what ITK-SNAP and 3D Slicer overlay)."""
    import SimpleITK as sitk

    from medseg.io import write_labels
    from medseg.io.seg_writer import write_dicom_seg

    lab = blob(vol.grid_shape)
    want = expected(vol, lab)
    in_itk = want
    if vol.meta.get("format") == "nifti":
        image = sitk.ReadImage(str(vol.meta["path"]))
        in_itk = {int(v): sitk_world(image, np.argwhere(lab == v)[:, ::-1]) for v in np.unique(lab) if v}
    outs = [(".nii.gz", "nibabel", read_back_nibabel, want), (".nii.gz", "SimpleITK", read_back_sitk, in_itk),
            (".mha", "SimpleITK", read_back_sitk, want), (".nrrd", "SimpleITK", read_back_sitk, want),
            (".seg.nrrd", "SimpleITK", read_back_sitk, want)]
    rows = []
    work = Path(tempfile.mkdtemp(dir=work))  # a folder per image: each label file's sidecar its own
    for ending, lib, read, where in outs:
        out = work / f"labels{ending.replace('.', '_')}{ending}"
        if not out.exists():
            write_labels(lab, vol, out, LABEL_MAP)
        n, dev, ok = compare(read(out), where)
        rows.append(Row(set_name, case, f"write {ending} -> {lib}", n, dev, ok))
    if vol.meta.get("format") == "dicom":
        frame = vol.n_frames - 1  # the last phase: its own files referenced, not frame 0's
        out = write_dicom_seg(lab, vol, work / "labels.dcm", LABEL_MAP, frame=frame)
        found, problems = read_back_seg(out, vol, frame)
        n, dev, ok = compare(found, want)  # segments 1..3 in value order are labels 1..3
        rows.append(Row(set_name, case, f"write SEG frame {frame} -> pydicom", n, dev, ok and not problems, problems))
    return rows


# -- driver --------------------------------------------------------------------------------
def run(data: Path, sets: list[str], per_set: int | None, write_per_set: int | None, work: Path) -> list[Row]:
    from medseg.io import read_volume

    rows: list[Row] = []
    for name in sets:
        items = spread(cases(data, name), per_set)
        writes = {str(p) for p in spread(items, write_per_set)}
        for p in items:
            try:
                if name == "sunnybrook":
                    rows += check_dicom(name, p)
                elif p.name.endswith(".png"):
                    rows += check_raster(name, p)
                else:
                    rows += check_nifti(name, p)
                if str(p) in writes:
                    vol = read_volume(p)
                    rows += check_writes(name, vol, p.name, work)
            except Exception as e:  # a crash is a mismatch too: say which input, carry on
                rows.append(Row(name, p.name, "error", 0, float("nan"), False, f"{type(e).__name__}: {str(e)[:160]}"))
    return rows


def print_table(rows: list[Row], tol: float) -> None:
    print(f"{'set':11} {'case':34} {'check':34} {'pts':>5} {'max mm':>10}  ok  note")
    for r in rows:
        ok = r.passed(tol)
        print(f"{r.set:11} {r.case[:34]:34} {r.check[:34]:34} {r.points:5d} {r.max_mm:10.2e}  {'yes' if ok else 'NO '} {r.note}")
    print()
    print(f"{'set':11} {'check':34} {'files':>6} {'max mm':>10}  mismatches")
    for (s, c) in dict.fromkeys((r.set, r.check) for r in rows):
        sel = [r for r in rows if (r.set, r.check) == (s, c)]
        bad = sum(not r.passed(tol) for r in sel)
        print(f"{s:11} {c[:34]:34} {len(sel):6d} {max(r.max_mm for r in sel):10.2e}  {bad}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python benchmarks/geometry_oracle.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the shared data folder")
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    ap.add_argument("--per-set", type=int, default=None, help="images per set, spread over it (default: all)")
    ap.add_argument("--write-per-set", type=int, default=5, help="of those, images whose labels are written and read back")
    ap.add_argument("--tol-mm", type=float, default=1e-3, help="largest world distance accepted (mm)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = sorted(set(sets) - set(SETS))
    if unknown or not args.data.is_dir():
        ap.error(f"unknown set(s) {unknown}" if unknown else f"no data folder {args.data}")
    import SimpleITK as sitk

    shown = sitk.ProcessObject_GetGlobalWarningDisplay()
    sitk.ProcessObject_SetGlobalWarningDisplay(False)  # ACDC's "unexpected scales in sform", GDCM's notes
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's on Sunnybrook's non-conformant UIDs
            rows = run(args.data, sets, args.per_set, args.write_per_set, Path(tmp))
    finally:
        sitk.ProcessObject_SetGlobalWarningDisplay(shown)
    print_table(rows, args.tol_mm)
    bad = [r for r in rows if not r.passed(args.tol_mm)]
    print(f"\n{len(rows)} checks, {len(bad)} mismatches, {time.perf_counter() - start:.1f} s")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1, default=float))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
