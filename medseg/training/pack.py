"""Pack real labelled slices into one compact, pickle-free ``.npz`` for training.

Every slice is stored on a square canvas (longest side resized to ``canvas``, anchored
top-left, zero-padded: exactly what the model sees for a whole slice), intensities normalised
per study with :func:`medseg.preprocess.normalize_intensity`, images JPEG-coded (q=85) in one
byte buffer, labels in medseg's default label map. Neighbouring slices of a stack are linked
(``prev``/``next``) for propagation training.

The splits are fixed and written down in ``docs/training.md``; ``split`` is 0 train, 1 val.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..labels import DEFAULT_LABEL_MAP, LabelMap
from ..preprocess import normalize_intensity

MODALITY_CODES = {"MR": 0, "CT": 1, "US": 2, "OT": 3}
STRUCT_BITS = {name: 1 << (v - 1) for name, v in DEFAULT_LABEL_MAP.values.items()}

ACDC_MAP = LabelMap({"rv": 1, "myo": 2, "lv": 3})
MNMS_MAP = LabelMap({"lv": 1, "myo": 2, "rv": 3})
CAMUS_MAP = LabelMap({"lv": 1, "myo": 2, "la": 3})


def acdc_split(patient: int) -> int:
    """ACDC: stratified by group (patients come in blocks of 20 per group): the last 4 of each
    block (017-020, 037-040, 057-060, 077-080, 097-100) are validation."""
    return 1 if (patient - 1) % 20 >= 16 else 0


@dataclass
class SliceRecord:
    image: np.ndarray  # (Y, X) float32 [0, 1]
    labels: np.ndarray  # (Y, X) uint8, default map
    labelled: tuple[str, ...]
    modality: str
    volume: str
    z: int
    split: int
    px_mm: float = 0.0


@dataclass
class Packer:
    canvas: int = 256
    quality: int = 85
    records: list[dict] = field(default_factory=list)
    jpeg: list[bytes] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    source: dict | None = None  # what a pack of a lab's own pairs holds (medseg.training.pairs_pack)

    def add(self, r: SliceRecord) -> None:
        img, lab, scale = to_canvas(r.image, r.labels, self.canvas)
        buf = io.BytesIO()
        from PIL import Image

        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(buf, format="JPEG", quality=self.quality)
        self.jpeg.append(buf.getvalue())
        self.labels.append(lab)
        bits = 0
        for s in r.labelled:
            bits |= STRUCT_BITS[s]
        self.records.append(dict(volume=r.volume, z=r.z, split=r.split, modality=MODALITY_CODES[r.modality], labelled=bits, px_mm=r.px_mm * scale if r.px_mm else 0.0))

    def save(self, path: str | Path) -> Path:
        from .._files import atomic_path

        n = len(self.records)
        vols = [r["volume"] for r in self.records]
        vol_names = sorted(set(vols))
        vid = np.array([vol_names.index(v) for v in vols], np.int32)
        z = np.array([r["z"] for r in self.records], np.int32)
        prev = np.full(n, -1, np.int32)
        nxt = np.full(n, -1, np.int32)
        where = {(vid[i], z[i]): i for i in range(n)}
        for i in range(n):
            prev[i] = where.get((vid[i], z[i] - 1), -1)
            nxt[i] = where.get((vid[i], z[i] + 1), -1)
        offsets = np.cumsum([0] + [len(b) for b in self.jpeg]).astype(np.int64)
        meta = {"canvas": self.canvas, "volumes": vol_names, "label_map": DEFAULT_LABEL_MAP.to_dict(), "format": "medseg-pack/1"}
        if self.source:
            meta["source"] = self.source
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(
                    f,
                    jpeg=np.frombuffer(b"".join(self.jpeg), np.uint8),
                    offsets=offsets,
                    labels=np.stack(self.labels).astype(np.uint8),
                    volume=vid,
                    z=z,
                    prev=prev,
                    next=nxt,
                    split=np.array([r["split"] for r in self.records], np.uint8),
                    modality=np.array([r["modality"] for r in self.records], np.uint8),
                    labelled=np.array([r["labelled"] for r in self.records], np.uint8),
                    px_mm=np.array([r["px_mm"] for r in self.records], np.float32),
                    meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                )
        return Path(path)


def to_canvas(image: np.ndarray, labels: np.ndarray, canvas: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Resize (Y, X) image/labels so the longest side is ``canvas``; pad bottom/right with 0.
    Returns (image, labels, pixel scale factor old/new)."""
    from skimage.transform import resize

    h, w = image.shape
    s = canvas / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    img = resize(image, (nh, nw), order=1, anti_aliasing=s < 1, preserve_range=True).astype(np.float32)
    lab = resize(labels, (nh, nw), order=0, anti_aliasing=False, preserve_range=True).astype(np.uint8)
    out_i = np.zeros((canvas, canvas), np.float32)
    out_l = np.zeros((canvas, canvas), np.uint8)
    out_i[:nh, :nw] = img
    out_l[:nh, :nw] = lab
    return out_i, out_l, 1.0 / s


#: the arrays every pack holds (:meth:`Packer.save`)
PACK_KEYS = ("jpeg", "offsets", "labels", "volume", "z", "prev", "next", "split", "modality", "labelled", "px_mm", "meta")


def check_pack(path: str | Path) -> dict[str, Any]:
    """The meta of the pack ``path``, or a one-line MedsegError saying it is no medseg pack (not
    an .npz, a pickled object array, arrays of another kind, another pack format): before
    anything is trained or written."""
    from ..errors import MedsegError

    hint = "make one with medseg train --data DIR --pack-only (or --pairs) -o DIR"
    try:
        with np.load(str(path), allow_pickle=False) as z:
            if not hasattr(z, "files"):  # a single .npy array
                raise ValueError("one array, not a pack")
            missing = [k for k in PACK_KEYS if k not in z.files]
            if missing:
                raise MedsegError(f"{path} is not a medseg pack (no {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''} array): {hint}")
            meta = json.loads(z["meta"].tobytes().decode())
    except MedsegError:
        raise
    except (OSError, ValueError, EOFError, UnicodeDecodeError, zipfile.BadZipFile) as e:  # json errors are ValueErrors
        raise MedsegError(f"{path} is not a medseg pack ({_one_line(e)}): {hint}") from None
    if not isinstance(meta, dict) or meta.get("format", "medseg-pack/1") != "medseg-pack/1" or not isinstance(meta.get("canvas"), int):
        raise MedsegError(f"{path} is not a medseg pack of this version (format {meta.get('format') if isinstance(meta, dict) else None!r}, "
                          f"want 'medseg-pack/1'): {hint}")
    return meta


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def load_pack(path: str | Path) -> dict[str, np.ndarray]:
    """Read a pack (no pickle; :func:`check_pack` first) and decode the JPEG images into uint8 (N, S, S)."""
    from PIL import Image

    check_pack(path)
    with np.load(str(path), allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    buf, off = d.pop("jpeg").tobytes(), d.pop("offsets")
    d["images"] = np.stack([np.array(Image.open(io.BytesIO(buf[off[i]:off[i + 1]]))) for i in range(len(off) - 1)])
    d["meta"] = json.loads(d["meta"].tobytes().decode())
    return d


# -- dataset readers (each yields SliceRecords) --------------------------------------------
def _nifti_zyx(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    img = nib.load(str(path))
    a = np.asanyarray(img.dataobj)
    while a.ndim > 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = a[..., None]
    return a.T, np.asarray(img.header.get_zooms()[:3])  # (Z, Y, X), (dx, dy, dz)


def _stack_records(img: np.ndarray, lab: np.ndarray, lmap: LabelMap, labelled: tuple[str, ...], modality: str, volume: str, split: int, px_mm: float, only_labelled: bool = True) -> Iterator[SliceRecord]:
    img01 = normalize_intensity(img, modality)
    lab_d = lmap.remap(np.rint(lab).astype(np.int32), DEFAULT_LABEL_MAP)
    for z in range(img.shape[0]):
        if only_labelled and not lab_d[z].any():
            continue
        yield SliceRecord(img01[z], lab_d[z], labelled, modality, volume, z, split, px_mm)


def read_acdc(root: Path) -> Iterator[SliceRecord]:
    for pdir in sorted((root / "acdc" / "training").glob("patient*")):
        pid = int(pdir.name[-3:])
        for gt in sorted(pdir.glob("*_frame??_gt.nii.gz")):
            img, zooms = _nifti_zyx(Path(str(gt).replace("_gt", "")))
            lab, _ = _nifti_zyx(gt)
            yield from _stack_records(img, lab, ACDC_MAP, ("lv", "myo", "rv"), "MR", f"acdc/{gt.name[:-10]}", acdc_split(pid), float(zooms[0]), only_labelled=False)


def read_mnms2(root: Path) -> Iterator[SliceRecord]:
    """M&Ms-2: the long-axis 4-chamber ED/ES slices train; the short axis is held out."""
    d = root / "mnms2" / "001"
    for ph in ("ED", "ES"):
        img, zooms = _nifti_zyx(d / f"001_LA_{ph}.nii.gz")
        lab, _ = _nifti_zyx(d / f"001_LA_{ph}_gt.nii.gz")
        yield from _stack_records(img, lab, MNMS_MAP, ("lv", "myo", "rv"), "MR", f"mnms2/LA_{ph}", 0, float(zooms[0]))


def camus_split(index: int, n: int) -> int:
    """CAMUS: by patient, the last 50 patients (sorted by id) are validation."""
    return 1 if index >= n - 50 else 0


def read_camus(root: Path) -> Iterator[SliceRecord]:
    from PIL import Image

    pats = sorted((root / "camus-224").glob("patient*"))
    for i, pdir in enumerate(pats):
        for gt in sorted(pdir.glob("*_gt.png")):
            img = np.array(Image.open(str(gt).replace("_gt", "")).convert("L"), np.float32)[None]
            lab = np.array(Image.open(gt))[None]
            yield from _stack_records(img, lab, CAMUS_MAP, ("lv", "myo", "la"), "US", f"camus/{gt.name[:-7]}", camus_split(i, len(pats)), 0.0)


def read_hvsmr(root: Path) -> Iterator[SliceRecord]:
    """HVSMR-2.0 RGB-coded masks; volume 10004 is validation."""
    from PIL import Image

    from ..io.annotations import HVSMR_COLOURS, colour_labels

    for f in sorted((root / "hvsmr2" / "images").glob("*.png")):
        img = np.array(Image.open(f).convert("L"), np.float32)[None]
        mask = root / "hvsmr2" / "masks" / f.name
        lab = colour_labels(np.array(Image.open(mask).convert("RGB")), HVSMR_COLOURS, DEFAULT_LABEL_MAP, where=str(mask))
        vol = f.stem.split("_")[0]
        structures = tuple(s for s in HVSMR_COLOURS if s in DEFAULT_LABEL_MAP)
        yield from _stack_records(img, lab[None], DEFAULT_LABEL_MAP, structures, "MR", f"hvsmr/{f.stem}", int(vol == "10004"), 0.0)


def read_siue(root: Path) -> Iterator[SliceRecord]:
    """SIUE parasternal short-axis echo (COCO polygons LE=LV epicardium, LV, RE=RV);
    the last 5 frames (sorted by name) are validation."""
    from PIL import Image

    from ..io.annotations import coco_labels, read_coco

    d = root / "siue-psax-echo"
    coco = read_coco(d / "Val_annotations.json")
    images = sorted((im for im in coco["images"] if (d / "pngs" / im["file_name"]).is_file()), key=lambda im: im["file_name"])
    for i, im in enumerate(images):
        img = np.array(Image.open(d / "pngs" / im["file_name"]).convert("L"), np.float32)
        lab = coco_labels(coco, im["file_name"], {"RE": "rv", "LE": "myo", "LV": "lv"}, DEFAULT_LABEL_MAP)  # the RV outside the epicardium
        yield from _stack_records(img[None], lab[None], DEFAULT_LABEL_MAP, ("lv", "myo", "rv"), "US", f"siue/{im['file_name'][:-4]}", int(i >= len(images) - 5), 0.0)


def read_sunnybrook(root: Path) -> Iterator[SliceRecord]:
    """Sunnybrook DICOM frames with expert i-/o-contours (LV endo / epicardium polygons in
    pixel (x, y)); patient SCD0000501 is validation. Slices with only an endocardial contour
    label the LV cavity only."""
    import pydicom

    from ..io.contours import polygon_mask, read_contour_folder

    d = root / "sunnybrook"
    links = [line.split(",") for line in (d / "link.csv").read_text().split()[1:]]
    for pid, orig in links:
        frames = read_contour_folder(d / "contourfiles" / orig)
        imgs, labs, labelled, nums = [], [], [], []
        for num, polys in sorted(frames.items()):
            ds = pydicom.dcmread(d / "dicoms" / pid / f"{num}.dcm")
            img = ds.pixel_array.astype(np.float32)
            lab = np.zeros(img.shape, np.uint8)
            if "o" in polys:
                lab[polygon_mask(polys["o"], img.shape)] = DEFAULT_LABEL_MAP["myo"]
            if "i" in polys:
                lab[polygon_mask(polys["i"], img.shape)] = DEFAULT_LABEL_MAP["lv"]
            imgs.append(img)
            labs.append(lab)
            labelled.append(("lv", "myo") if "o" in polys else ("lv",))
            nums.append(num)
        stack = normalize_intensity(np.stack(imgs), "MR")
        for img01, lab, lbl, num in zip(stack, labs, labelled, nums):
            yield SliceRecord(img01, lab, lbl, "MR", f"sunnybrook/{pid}/{num}", 0, int(pid == "SCD0000501"), float(ds.PixelSpacing[0]))


READERS: dict[str, Callable[[Path], Iterator[SliceRecord]]] = {
    "acdc": read_acdc,
    "camus": read_camus,
    "mnms2": read_mnms2,
    "hvsmr": read_hvsmr,
    "siue": read_siue,
    "sunnybrook": read_sunnybrook,
}


def build_pack(shared_data: str | Path, out: str | Path, datasets: tuple[str, ...] = tuple(READERS), canvas: int = 256, quality: int = 85, progress: Callable[[str, int], None] | None = None) -> Path:
    """Pack the named datasets from ``shared_data`` into ``out`` (.npz)."""
    root = Path(shared_data)
    packer = Packer(canvas=canvas, quality=quality)
    for name in datasets:
        if name not in READERS:
            raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(READERS)}")
        for rec in READERS[name](root):
            packer.add(rec)
            if progress:
                progress(name, len(packer.records))
    return packer.save(out)
