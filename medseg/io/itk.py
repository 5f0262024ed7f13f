"""MHA/MHD/NRRD reading and label writing (SimpleITK).

SimpleITK's array order is ``(Z, Y, X)`` (``(T, Z, Y, X)`` for 4-D images) which is medseg's
order already; its geometry is LPS and converted in :mod:`medseg.io.geometry`. A 4th image
axis is time; its spacing is kept in ``meta["time_spacing"]`` but, having no unit in these
formats, does not give ``frame_times_s``. Vector (RGB) pixels are converted to luminance.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .._files import atomic_path
from ..errors import GeometryError, ImageReadError
from .geometry import affine_from_sitk, itk_direction_problem, sitk_geometry_from_affine
from .limits import check_decoded_size
from .volume import Volume, luminance

_MODALITY_KEYS = {"MET_MOD_MR": "MR", "MET_MOD_CT": "CT", "MET_MOD_US": "US", "MR": "MR", "CT": "CT", "US": "US"}


@contextlib.contextmanager
def _native_stderr() -> Iterator[Callable[[], str]]:
    """Catch what native code writes to file descriptor 2 inside the block (instead of the
    user's terminal); yields a function returning it."""
    import sys
    import tempfile

    text: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (an embedding host): nothing to catch
        yield lambda: ""
        return
    try:
        tmp = tempfile.TemporaryFile()
    except OSError:  # no writable temporary folder (TMPDIR, /tmp, /var/tmp, the working folder): not caught
        os.close(saved)
        yield lambda: ""
        return
    with tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lambda: "".join(text)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text.append(tmp.read().decode(errors="replace"))


def _check_data_file(path: Path) -> None:
    """A detached header (``.mhd``'s ElementDataFile, ``.nhdr``'s ``data file:``) must name
    regular files: a FIFO or a device (``/dev/urandom``) would be read forever or as an image."""
    if path.suffix.lower() not in (".mhd", ".nhdr"):
        return
    try:
        with open(path, "rb") as f:
            text = f.read(65536).decode("latin-1")
    except OSError as e:
        raise ImageReadError(f"cannot read {path}: {e.strerror}") from None
    names = []
    for line in text.splitlines():
        key, sep, value = line.partition("=" if path.suffix.lower() == ".mhd" else ":")
        key = key.strip().lower()
        if sep and key in ("elementdatafile", "data file", "datafile"):
            value = value.strip()
            if value.upper() not in ("LOCAL", "LIST") and not value.upper().startswith("LIST "):
                names.append(value.split()[0] if "%" in value else value)
    for name in names:
        data = Path(name) if Path(name).is_absolute() else path.parent / name
        if "%" not in name and not data.is_file():
            raise ImageReadError(f"{path}: its data file {name} is {'not a regular file' if data.exists() else 'missing'}")


def read_itk(path: Path) -> Volume:
    """Read a 2-, 3- or 4-D MHA/MHD/NRRD image into a :class:`Volume` (native dtype kept)."""
    _check_data_file(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        with _native_stderr() as said:  # MetaIO writes its own complaints straight to stderr
            reader.ReadImageInformation()  # the header only: size and pixel type
    except Exception as e:  # SimpleITK raises RuntimeError with a multi-line ITK trace
        raise _unreadable(path, e, said()) from None
    problem = itk_direction_problem(reader.GetDirection(), reader.GetDimension())
    if problem:  # before the read, which fails on a singular one with ITK's matrix dump
        raise GeometryError(f"{path}: {problem}")
    # before the pixels are read (and inflated: a small compressed MHA / NRRD may declare GBs)
    n_comp = reader.GetNumberOfComponents()
    if n_comp > 1 and (n_comp not in (3, 4) or "complex" in sitk.GetPixelIDValueAsString(reader.GetPixelID())):
        # MetaIO stores a complex image as 2 float channels: their mean was read as the image
        raise ImageReadError(f"{path}: {n_comp} values per pixel (a complex or multi-channel image); medseg reads grey images "
                             "and colour (RGB/RGBA) ones: save the magnitude, or one channel")
    img = execute_checked(reader, path, tuple(reversed(reader.GetSize())) + ((n_comp,) if n_comp > 1 else ()))
    dim = img.GetDimension()
    if dim not in (2, 3, 4):
        raise ImageReadError(f"{path}: {dim}-D image is not supported (2-D, 3-D or 3-D + time)")
    spacing = img.GetSpacing()
    if dim == 4:
        d = np.asarray(img.GetDirection()).reshape(4, 4)
        if np.any(np.abs(d[3, :3]) > 1e-6) or np.any(np.abs(d[:3, 3]) > 1e-6):
            raise GeometryError(f"{path}: the 4th (time) axis is mixed with space in the direction matrix")
    array = sitk.GetArrayFromImage(img)
    if img.GetNumberOfComponentsPerPixel() > 1:
        array = luminance(array)
    array = array.reshape((1,) * (4 - dim) + array.shape)  # -> (T, Z, Y, X)
    meta = {"format": "itk", "path": str(path), "source_ndim": dim}
    if dim == 4:
        meta["time_spacing"] = float(spacing[3])
    missing = _missing_spacing_fields(path)
    if missing:
        meta["geometry_note"] = (f"the header gives no voxel spacing (no {' or '.join(missing)}): "
                                 "1 mm per voxel assumed, as for a PNG (measurements in mm refuse it)")
    return Volume(
        array=array,
        affine=affine_from_sitk(img),
        modality=_modality(img),
        spacing_known=not missing,
        meta=meta,
    )


#: the header fields that give an ITK image its voxel spacing, per format (MetaIO, NRRD);
#: without any of them SimpleITK reads 1 mm, which medseg took for a measured spacing
_SPACING_FIELDS = {".mha": ("ElementSpacing", "ElementSize"), ".mhd": ("ElementSpacing", "ElementSize"),
                   ".nrrd": ("space directions", "spacings"), ".nhdr": ("space directions", "spacings")}


def _missing_spacing_fields(path: Path) -> tuple[str, ...]:
    """The spacing fields of ``path``'s format (:data:`_SPACING_FIELDS`) when its header has
    none of them, else ``()`` (also for a header that cannot be read here: SimpleITK read it)."""
    fields = _SPACING_FIELDS.get(path.suffix.lower(), ())
    if not fields:
        return ()
    nrrd = path.suffix.lower() in (".nrrd", ".nhdr")
    try:
        with open(path, "rb") as f:
            text = f.read(1 << 20).decode("latin-1")
    except OSError:
        return ()
    keys = set()
    for line in text.splitlines():
        if nrrd and not line.strip():  # the blank line that ends a NRRD header
            break
        if nrrd and (line.startswith("#") or ":=" in line):  # comments, key:=value pairs (Slicer's)
            continue
        key, sep, _ = line.partition(":" if nrrd else "=")
        key = key.strip().lower()
        if sep:
            keys.add(key)
        if not nrrd and key == "elementdatafile":  # the last MetaIO field: the data follows
            break
    return () if keys & {f.lower() for f in fields} else fields


def execute_checked(reader: sitk.ImageFileReader, path: Path, shape: tuple[int, ...]) -> sitk.Image:
    """The image of a reader whose header was read: the memory guard for ``shape`` (before the
    pixels are read and inflated: a small compressed MHA / NRRD may declare GBs), the read, and
    its spacing (zero or missing: a one-line GeometryError)."""
    check_decoded_size(path, shape, _component_dtype(reader.GetPixelID()))
    try:
        with _native_stderr() as said:
            img = reader.Execute()
    except Exception as e:
        raise _unreadable(path, e, said()) from None
    spacing = img.GetSpacing()
    if any(not np.isfinite(s) or s <= 0 for s in spacing[:3]):
        raise GeometryError(f"{path}: voxel spacing is zero or missing ({tuple(spacing)} mm)")
    return img


def _unreadable(path: Path, e: BaseException, said: str) -> ImageReadError | GeometryError:
    if "Bad direction" in str(e):  # ITK's refusal of a singular direction matrix ends in the matrix's last row
        return GeometryError(f"{path}: the direction matrix (TransformMatrix / space directions) is singular "
                             "(determinant 0: its axes are not independent); allowed: unit axes at right angles")
    why = "the file is truncated" if "not read completely" in said else _first_line(e)
    return ImageReadError(f"cannot read {path}: SimpleITK could not read it as an image ({why})")


def _component_dtype(pixel_id: int) -> np.dtype:
    """numpy dtype of one component of a SimpleITK pixel type (vector and label types too);
    float64 (the widest) for a type not listed."""
    for prefix in ("sitkVector", "sitkLabel", "sitk"):
        for name, dtype in _SITK_COMPONENTS.items():
            if getattr(sitk, prefix + name, None) == pixel_id:
                return np.dtype(dtype)
    return np.dtype(np.float64)


_SITK_COMPONENTS = {"UInt8": np.uint8, "Int8": np.int8, "UInt16": np.uint16, "Int16": np.int16, "UInt32": np.uint32,
                    "Int32": np.int32, "UInt64": np.uint64, "Int64": np.int64, "Float32": np.float32,
                    "Float64": np.float64, "ComplexFloat32": np.complex64, "ComplexFloat64": np.complex128}


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    msg = next((ln for ln in lines if "rror" in ln and "sitk::ERROR" not in ln), lines[-1] if lines else "")
    return msg[:160]


def _modality(img: sitk.Image) -> str:
    for key in ("Modality", "modality"):
        if img.HasMetaDataKey(key):
            return _MODALITY_KEYS.get(img.GetMetaData(key).strip().upper(), "OT")
    return "OT"


def write_itk_labels(labels: np.ndarray, like: Volume, path: Path) -> Path:
    """Write integer ``labels`` ((Z, Y, X) or (T, Z, Y, X)) as MHA/NRRD in ``like``'s grid.

    Geometry is written in LPS (ITK's convention); the image is 3-D (4-D when T > 1; 2-D for
    a 2-D image, :func:`_as_2d`), compressed, written atomically.
    """
    a = labels if labels.ndim == 3 else (labels[0] if labels.shape[0] == 1 else labels)
    if a.ndim == 3 and _as_2d(like):
        a = a[0]
    img = sitk.GetImageFromArray(np.ascontiguousarray(a), isVector=False)
    origin, spacing, direction = sitk_geometry_from_affine(like.affine, ndim=a.ndim)
    if a.ndim == 4 and like.frame_times_s is not None and len(like.frame_times_s) > 1:
        spacing = spacing[:3] + (float(np.mean(np.diff(like.frame_times_s))),)
    img.SetOrigin(origin)
    img.SetSpacing(spacing)
    img.SetDirection(direction)
    with atomic_path(path) as tmp:
        sitk.WriteImage(img, str(tmp), useCompression=True)
    return Path(path)


def _as_2d(like: Volume) -> bool:
    """Labels of ``like`` are written 2-D: a one-slice image read from a 2-D file (a PNG, a 2-D
    MHA or NIfTI) whose grid a 2-D ITK image holds (its plane the z = 0 plane of LPS, as ITK places
    a 2-D image: medseg reads the file back on ``like``'s grid). A 3-D Y x X x 1 file did not
    resample onto the 2-D image in ITK ("Expected vector of length 3 but only got 2 elements")."""
    if like.n_slices != 1 or int(like.meta.get("source_ndim", 3)) != 2:
        return False
    from .geometry import affine_from_itk

    origin, spacing, direction = sitk_geometry_from_affine(like.affine, ndim=2)
    try:
        back = affine_from_itk(origin, spacing, direction)
    except GeometryError:
        return False
    return bool(np.allclose(back, like.affine, atol=1e-6))  # the normal too: medseg reads a 2-D file's as a unit one
