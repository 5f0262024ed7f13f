"""`medseg measure --dicom-sr OUT.dcm`: the report's measurements as a DICOM Structured Report.

A highdicom ``Comprehensive3DSR`` holding a TID 1500 Measurement Report: one TID 1501
measurement group per structure (LV, RV, LA; finding site its SNOMED CT code), each value a
TID 300 measurement with a UCUM unit. Concept names come only from pydicom's concept
dictionaries (:data:`SHORT_AXIS`, :data:`ECHO`); a value without a standard code (the LV EDV
index of a short-axis stack, the RA) is left out and listed in the report's
``dicom_sr.left_out``. REPORT.json stays the record; the SR is an export of its numbers.

The SR joins the study of the images the labels were segmented from (:func:`sr_context`):
their medseg sidecar names the DICOM image, a DICOM SEG carries its study. The SR copies the
patient and study, lists the SEG and the source images as evidence and gets a new series.
Labels of a NIfTI (or PNG, video) image name no study: refused before any work, since an SR
filed under an invented study would be a patient PACS does not know.
highdicom and pydicom are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._files import atomic_path, shown
from ..errors import ImageWriteError, MedsegError

#: UCUM unit -> its meaning
UNITS = {"ml": "milliliter", "g": "gram", "%": "Percent", "l/min": "liter per minute", "ml/m2": "milliliter per square meter",
         "l/min/m2": "liter per minute per square meter"}

#: short-axis (volumetric) report: (structure, report key path, (scheme, pydicom code name), unit);
#: "EF" stands for the modality's ejection fraction code (:data:`EF_CODES`)
SHORT_AXIS: tuple[tuple[str, str, tuple[str, str] | None, str], ...] = (
    ("lv", "lv.edv_ml", ("LN", "LeftVentricularEDVolume"), "ml"),  # 8821-1, CID 3468 / 3835
    ("lv", "lv.esv_ml", ("LN", "LeftVentricularESVolume"), "ml"),  # 8823-7, CID 3469 / 3835
    ("lv", "lv.sv_ml", ("SCT", "StrokeVolume"), "ml"),  # 90096001, CID 3835 (finding site: the group's LV)
    ("lv", "lv.ef_pct", ("EF", "lv"), "%"),  # 8811-2 / 8810-4, CID 3833
    ("lv", "lv_mass_g", ("LN", "LeftVentricleMass"), "g"),  # 18087-7, CID 12203
    ("lv", "co_l_min", ("SCT", "CardiacOutput"), "l/min"),  # 82799009
    ("lv", "indexed.lv_sv_ml_m2", ("SCT", "StrokeIndex"), "ml/m2"),  # 277381004
    ("lv", "indexed.ci_l_min_m2", ("SCT", "CardiacIndex"), "l/min/m2"),  # 54993008
    ("lv", "indexed.lv_edv_ml_m2", None, "ml/m2"),
    ("lv", "indexed.lv_esv_ml_m2", None, "ml/m2"),
    ("lv", "indexed.lv_mass_g_m2", None, "g/m2"),
    ("rv", "rv.edv_ml", ("LN", "RightVentricularEDVolume"), "ml"),  # 8822-9, CID 3468
    ("rv", "rv.esv_ml", ("LN", "RightVentricularESVolume"), "ml"),  # 8824-5, CID 3469
    ("rv", "rv.sv_ml", ("SCT", "RightVentricularStrokeVolume"), "ml"),  # 429483009
    ("rv", "rv.ef_pct", ("EF", "rv"), "%"),  # 8818-7 / 8817-9, CID 3833
    ("rv", "indexed.rv_sv_ml_m2", ("SCT", "RVStrokeIndex"), "ml/m2"),  # 429619008
    ("rv", "indexed.rv_edv_ml_m2", None, "ml/m2"),
    ("rv", "indexed.rv_esv_ml_m2", None, "ml/m2"),
    ("la", "atria.la.max_ml", ("DCM", "LeftAtrialESVolume"), "ml"),  # 122408, CID 3469: at LV end systole
    ("la", "atria.la.min_ml", ("DCM", "LeftAtrialEDVolume"), "ml"),  # 122407, CID 3468: at LV end diastole
    ("la", "indexed.la_max_ml_m2", None, "ml/m2"),
    ("ra", "atria.ra.max_ml", None, "ml"),
    ("ra", "atria.ra.min_ml", None, "ml"),
)

#: ejection fraction by the source images' modality (CID 3833); other modalities: left out
EF_CODES = {("lv", "MR"): "LeftVentricularEjectionFractionByMR", ("lv", "CT"): "LeftVentricularEjectionFractionByCT",
            ("rv", "MR"): "RightVentricularEjectionFractionByMR", ("rv", "CT"): "RightVentricularEjectionFractionByCT"}

#: echo report ``method`` -> report key -> LOINC code name (CID 12300 Core Echo Measurements)
ECHO: dict[str, dict[str, str | None]] = {
    "biplane_disks": {
        "lv.edv_ml": "LeftVentricularEndDiastolicVolumeBiplaneMOD", "lv.esv_ml": "LeftVentricularEndSystolicVolumeBiplaneMOD",
        "lv.ef_pct": "LeftVentricularEjectionFractionBiplaneMOD", "indexed.lv_edv_ml_m2": "LeftVentricularEndDiastolicVolumeBiplaneMODBSA",
        "indexed.lv_esv_ml_m2": "LeftVentricularEndSystolicVolumeBiplaneMODBSA"},
    "single_plane_disks_a4c": {
        "lv.edv_ml": "LeftVentricularEndDiastolicVolumeSinglePlane4CMOD", "lv.esv_ml": "LeftVentricularEndSystolicVolumeSinglePlane4CMOD",
        "lv.ef_pct": "LeftVentricularEjectionFractionSinglePlane4CMOD", "indexed.lv_edv_ml_m2": None, "indexed.lv_esv_ml_m2": None},
    # one view over the cycle: which view is not known; CID 12200's codes with the method as a modifier
    "single_plane_disks_clip": {
        "lv.edv_ml": "LeftVentricularEndDiastolicVolume", "lv.esv_ml": "LeftVentricularEndSystolicVolume",
        "lv.ef_pct": "LeftVentricularEjectionFractionByUS", "indexed.lv_edv_ml_m2": None, "indexed.lv_esv_ml_m2": None},
}

#: echo LA maximum volume (area-length, :data:`medseg.measure.echo.LA_METHODS`) by its views -> (volume, index)
#: code names; a single-plane area-length volume has none (CID 12300 codes single-plane LA volumes by disks only)
ECHO_LA = {"biplane": ("LeftAtrialEndSystolicVolumeBiplaneAreaLength", "LeftAtrialEndSystolicVolumeBiplaneAreaLengthBSA"),
           "a4c": (None, None)}

#: structure -> its SNOMED CT code name (finding site of its group)
SITES = {"lv": "LeftVentricle", "rv": "RightVentricle", "la": "LeftAtrium"}
GROUP_NAMES = {"lv": "left ventricle", "rv": "right ventricle", "la": "left atrium"}


#: where the images were taken (docs/io.md, What the outputs say about the patient): not copied into the SR
SITE_KEYWORDS = ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName")


@dataclass
class SRContext:
    """What the SR joins and references: the source images' and SEGs' headers (``evidence``, the
    first one's patient and study copied), the modality of the images measured, the study UID."""

    evidence: list[Any]
    modality: str
    study_uid: str
    segs: list[str] = field(default_factory=list)  # SOP instance UIDs of the DICOM SEGs measured


def check_sr_output(path: Path, outputs: dict[str, Any], inputs: dict[str, Any]) -> None:
    """Refuse, before any work, an SR path that replaces an input or another output, or is a folder."""
    from .._files import check_not_inputs

    if Path(path).suffix.lower() not in (".dcm", ""):
        raise ImageWriteError(f"{path}: --dicom-sr writes a DICOM file; name it .dcm")
    check_not_inputs({"DICOM SR": path, **outputs}, inputs)


def sr_context(paths: Sequence[Path]) -> SRContext:
    """The DICOM study the label files belong to (module doc). Raises a one-line
    :class:`MedsegError` when none of them names one, or they name different studies."""
    with warnings.catch_warnings():  # pydicom warns of non-conformant UIDs (Sunnybrook's) as it reads their values
        warnings.simplefilter("ignore")
        return _sr_context(paths)


def _sr_context(paths: Sequence[Path]) -> SRContext:
    from .seg_reader import is_dicom_seg

    evidence: list[Any] = []
    segs: list[str] = []
    modality = ""
    read: dict[Any, list[Any]] = {}  # the SEGs of a cine's frames name one series: its headers read once
    for p in paths:
        if is_dicom_seg(p):
            seg, sources = _seg_evidence(p)
            segs.append(str(seg.SOPInstanceUID))
            found = _sidecar_sources(p, read)  # the SEG's own sidecar: the source headers with their modality
            evidence += [seg, *(found or sources)]
            modality = modality or _modality(found or sources)
            continue
        found = _sidecar_sources(p, read)
        if not found:
            raise MedsegError(f"--dicom-sr needs the DICOM study of the labels: {shown(p)} is no DICOM SEG and "
                              f"{_why_no_study(p)}; an SR joins its images' study in PACS (REPORT.json holds the numbers)")
        evidence += found
        modality = modality or _modality(found)
    studies = list(dict.fromkeys(str(ds.StudyInstanceUID) for ds in evidence))
    if len(studies) > 1:
        raise MedsegError(f"--dicom-sr: the label files come from {len(studies)} DICOM studies ({', '.join(studies[:3])}); "
                          "an SR belongs to one study: measure one study's labels")
    unique = list({str(ds.SOPInstanceUID): ds for ds in evidence}.values())
    from .seg_writer import _blank_invalid_dates, _empty_type2

    first = next((ds for ds in unique if "PatientID" in ds), unique[0])  # a header, not a SEG's bare reference
    unique.remove(first)
    for keyword in SITE_KEYWORDS:  # highdicom copies the source's acquisition equipment: no hospital, no scanner room
        if keyword in first:
            delattr(first, keyword)
    return SRContext([_empty_type2(_blank_invalid_dates(first)), *unique], modality, studies[0], segs)


def _why_no_study(p: Path) -> str:
    from .writers import read_sidecar

    prov = (read_sidecar(p) or {}).get("provenance") or {}
    src = prov.get("input")
    if not isinstance(src, str):
        return "no medseg sidecar names the image it was segmented from"
    if not Path(src).exists():
        return f"the image its sidecar names ({shown(src)}) is not there"
    return f"its image {shown(src)} is not DICOM"


def _sidecar_sources(p: Path, read: dict[Any, list[Any]] | None = None) -> list[Any]:
    """The headers (no pixels) of the DICOM images the label file's sidecar names as its input:
    the series segmented (``provenance.series``) of a folder, or the one file; [] when the input
    is not DICOM or is gone. ``read``: (input, series) -> headers already read."""
    from .writers import read_sidecar

    prov = (read_sidecar(p) or {}).get("provenance") or {}
    src = prov.get("input")
    if not isinstance(src, str) or not Path(src).exists():
        return []
    key = (str(Path(src).resolve()), str(prov.get("series")))
    if read is not None and key in read:
        return read[key]
    found = _input_headers(Path(src), prov.get("series"))
    if read is not None:
        read[key] = found
    return found


def _input_headers(source: Path, series: Any) -> list[Any]:
    from .archive import extracted, is_archive
    from .dicom_frames import is_image, read_header
    from .dicom_series import _folder_headers, series_matches

    if is_archive(source) and source.is_file():  # an image read from a zip: the headers of the folder or file it holds
        try:
            with extracted(source) as x:
                return _input_headers(x.target, series)
        except MedsegError:
            return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if source.is_dir():
                headers = [ds for _, ds in _folder_headers(source)]
            else:
                ds = read_header(source, strict=False)
                headers = [ds] if ds is not None and is_image(ds) else []
        except MedsegError:
            return []
    if isinstance(series, str) and series:
        headers = [ds for ds in headers if series_matches(ds, series)]
    return [ds for ds in headers if ds.get("StudyInstanceUID") and ds.get("SOPInstanceUID")]


def _seg_evidence(p: Path) -> tuple[Any, list[Any]]:
    """A DICOM SEG's header and a bare reference (study, series, SOP class and instance UIDs) to
    each source image it lists in its ReferencedSeriesSequence."""
    from pydicom.dataset import Dataset

    from .dicom_frames import dcmread

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seg = dcmread(str(p), stop_before_pixels=True)
    refs = []
    for series in seg.get("ReferencedSeriesSequence", None) or []:
        for item in series.get("ReferencedInstanceSequence", None) or []:
            ds = Dataset()
            ds.StudyInstanceUID, ds.SeriesInstanceUID = seg.StudyInstanceUID, series.SeriesInstanceUID
            ds.SOPClassUID, ds.SOPInstanceUID = item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID
            refs.append(ds)
    return seg, refs


def _modality(headers: list[Any]) -> str:
    """MR, CT, US, ...: the headers' Modality, else read from their SOP class (a SEG's bare references)."""
    from pydicom.uid import UID

    for ds in headers:
        if ds.get("Modality"):
            return str(ds.Modality)
        words = UID(str(ds.get("SOPClassUID", ""))).name.split()
        for m in ("MR", "CT", "Ultrasound"):
            if m in words:
                return "US" if m == "Ultrasound" else m
    return ""


def _value(report: dict, key: str) -> float | None:
    """The report's finite number at the dotted ``key`` (a nested report, or a flat row of
    :func:`medseg.measure.export.report_row`, as ``batch --measure`` keeps it); None else."""
    v: Any = report.get(key) if key in report else report
    for part in key.split(".") if key not in report else ():
        v = v.get(part) if isinstance(v, dict) else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


#: code meanings set here: pydicom's carries SNOMED's semantic tag, which no other item has
MEANINGS = {("SCT", "RightVentricularStrokeVolume"): "Right Ventricular Stroke Volume"}  # not "... (observable entity)"


def _code(scheme: str, name: str) -> Any:
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    code = getattr(getattr(codes, scheme), name)
    meaning = MEANINGS.get((scheme, name))
    return code if meaning is None else Code(code.value, code.scheme_designator, meaning, code.scheme_version)


def measurement_rows(report: dict, modality: str) -> tuple[list[tuple[str, str, Any, str, Any]], list[str]]:
    """(structure, report key, concept name Code, UCUM unit, method Code or None) for each finite
    value of the report that has a standard code, and the report keys of finite values that have none."""
    from ..measure.echo import is_echo_report

    rows: list[tuple[str, str, Any, str, Any]] = []
    left: list[str] = []
    if is_echo_report(report):
        method = _code("DCM", "MethodOfDisksBiplane" if report["method"] == "biplane_disks" else "MethodOfDisksSinglePlane")
        table: list[tuple[str, str, tuple[str, str] | None, str]]
        if modality == "US" or not modality:
            table = [("lv", k, ("LN", n) if n else None, "%" if k.endswith("pct") else "ml/m2" if k.startswith("indexed") else "ml")
                     for k, n in ECHO[report["method"]].items()]
        else:  # long-axis MR / CT views by the method of disks: the volumetric codes, the method as a modifier
            table = [t for t in SHORT_AXIS if t[1] in ("lv.edv_ml", "lv.esv_ml", "lv.ef_pct")]
        table.append(("lv", "lv.sv_ml", ("SCT", "StrokeVolume"), "ml"))
        la = "biplane" if "biplane" in str(report.get("la_method") or "") else "a4c" if report.get("la_method") else None
        la_codes = ECHO_LA.get(la or "", (None, None)) if modality in ("US", "") and report["method"] != "single_plane_disks_clip" else (None, None)
        table += [("la", "atria.la.max_ml", ("LN", la_codes[0]) if la_codes[0] else None, "ml"),
                  ("la", "indexed.la_volume_ml_m2", ("LN", la_codes[1]) if la_codes[1] else None, "ml/m2")]
    else:
        method, table = None, list(SHORT_AXIS)
    for structure, key, code, unit in table:
        value = _value(report, key)
        if value is None:
            continue
        if code is not None and code[0] == "EF":
            code = ("LN", EF_CODES[(code[1], modality)]) if (code[1], modality) in EF_CODES else None
        if code is None:
            left.append(key)
            continue
        rows.append((structure, key, _code(*code), unit, method if structure == "lv" else None))  # the LA's: area-length, in its code
    return rows, left


def build_measurement_sr(report: dict, context: SRContext, series_number: int = 901) -> tuple[Any, list[str]]:
    """The Comprehensive 3D SR of ``report``'s measurements (module doc), and the report keys left out (no standard code).

    Raises:
        ImageWriteError: the report holds no value with a standard code, or highdicom refused the content.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    from .. import __version__
    from .dicom_charset import BUILD_CHARACTER_SET, decode_text, fit_character_set
    from .seg_writer import tracking_uid  # the SEG's segment of the same structure has this TrackingUID

    decode_text(context.evidence[0])  # the patient and study text highdicom copies, read in its own character set
    rows, left = measurement_rows(report, context.modality)
    if not rows:
        raise ImageWriteError("--dicom-sr: the report holds no measurement with a standard DICOM code"
                              + (f" ({', '.join(left)} have none)" if left else "") + "; REPORT.json has the numbers")
    algorithm = hd.sr.AlgorithmIdentification(name="medseg", version=__version__)
    groups = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for structure in dict.fromkeys(r[0] for r in rows):
                measurements = [hd.sr.Measurement(name=name, value=_value(report, key), unit=hd.sr.CodedConcept(unit, "UCUM", UNITS[unit]),
                                                  method=method, algorithm_id=algorithm)
                                for s, key, name, unit, method in rows if s == structure]
                groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking_uid(context.study_uid, structure),
                                                                       identifier=GROUP_NAMES[structure]),
                    finding_sites=[hd.sr.FindingSite(_code("SCT", SITES[structure]))], algorithm_id=algorithm,
                    measurements=measurements))
            device = hd.sr.DeviceObserverIdentifyingAttributes(uid=generate_uid(entropy_srcs=["medseg"]), name="medseg",
                                                               manufacturer_name="medseg", model_name="medseg")
            context_item = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Device, observer_identifying_attributes=device))
            content = hd.sr.MeasurementReport(observation_context=context_item, procedure_reported=_procedure(context.modality),
                                              imaging_measurements=groups, title=codes.DCM.ImagingMeasurementReport)
            sr = hd.sr.Comprehensive3DSR(
                evidence=context.evidence, content=content, series_instance_uid=hd.UID(), series_number=series_number,
                sop_instance_uid=hd.UID(), instance_number=1, manufacturer="medseg", is_complete=True, is_final=False,
                series_description="medseg measurements", specific_character_set=BUILD_CHARACTER_SET)
            fit_character_set(sr, context.evidence[0])  # the patient's header's, unless its text needs another
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise ImageWriteError(f"highdicom could not build the DICOM SR: {str(e).splitlines()[0][:200]}") from None
    return sr, left


def _procedure(modality: str) -> Any:
    """The procedure reported: cardiac MRI / CT (CID 3757), echocardiography; a general imaging procedure else."""
    names = {"MR": "CardiacMRI", "CT": "CardiacCT", "US": "Echocardiography"}
    return _code("SCT", names.get(modality, "ImagingProcedure"))


def save_sr(sr: Any, path: Path) -> Path:
    """Write the SR atomically (a failed write leaves no file, or the earlier one, in place)."""
    out = Path(path)
    try:
        with atomic_path(out) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns of the source's non-conformant UIDs (Sunnybrook's) as it writes them
            sr.save_as(tmp, enforce_file_format=True)
    except OSError as e:
        raise ImageWriteError(f"{out}: cannot write the DICOM SR: {e.strerror or e}") from None
    return out


def sr_record(sr: Any, path: Path, left: list[str]) -> dict[str, Any]:
    """What the report records of the SR written (``dicom_sr``): its path, UIDs and the values it leaves out."""
    return {"path": str(path), "sop_instance_uid": str(sr.SOPInstanceUID), "series_instance_uid": str(sr.SeriesInstanceUID),
            "study_instance_uid": str(sr.StudyInstanceUID), "left_out": left}


def is_dicom_sr(path: str | Path) -> bool:
    """Whether ``path`` is a DICOM Structured Report (header only)."""
    from pydicom.uid import UID

    from .dicom_frames import dcmread

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(str(path), stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # not DICOM, truncated: the image readers give the error
        return False
    return UID(str(ds.get("SOPClassUID", ""))).name.endswith("SR Storage")


def describe_sr(path: str | Path) -> dict[str, Any]:
    """What ``medseg info`` says of a DICOM SR (any, medseg's or not): its title, patient, study,
    series, flags, the instances it lists as evidence and each numeric measurement (concept,
    code, value, UCUM unit, the finding site of its group)."""
    with warnings.catch_warnings():  # pydicom warns of UIDs real scanners write (Sunnybrook's) as it reads them
        warnings.simplefilter("ignore")
        return _describe_sr(path)


def _describe_sr(path: str | Path) -> dict[str, Any]:
    from pydicom.uid import UID

    from ..errors import ImageReadError
    from .dicom_frames import dcmread

    try:
        ds = dcmread(str(path))
    except Exception as e:  # pydicom raises many types for broken files
        raise ImageReadError(f"{path}: cannot read DICOM SR: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}") from None
    title = ds.get("ConceptNameCodeSequence")
    evidence = [i for key in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence")
                for study in ds.get(key, None) or [] for series in study.get("ReferencedSeriesSequence", None) or []
                for i in series.get("ReferencedSOPSequence", None) or []]
    kinds: dict[str, int] = {}
    for item in evidence:
        name = UID(str(item.get("ReferencedSOPClassUID", ""))).name or "?"
        kinds[name] = kinds.get(name, 0) + 1
    out = {"format": "dicom-sr", "sop_class": UID(str(ds.get("SOPClassUID", ""))).name,
           "title": str(title[0].CodeMeaning) if title else "", "patient_id": str(ds.get("PatientID", "") or ""),
           "study_uid": str(ds.get("StudyInstanceUID", "")), "series_uid": str(ds.get("SeriesInstanceUID", "")),
           "series_description": str(ds.get("SeriesDescription", "") or ""),
           "flags": " / ".join(str(ds.get(k, "")) for k in ("CompletionFlag", "VerificationFlag", "PreliminaryFlag") if ds.get(k)),
           "evidence": ", ".join(f"{n} x{c}" for n, c in kinds.items())}
    try:
        out["measurements"] = _numeric_items(ds.get("ContentSequence", None) or [])
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):  # another tool's malformed content tree
        out["note"] = "its content tree could not be read: measurements not listed"
    return {k: v for k, v in out.items() if v not in ("", [], None)}


def _numeric_items(items: Any, site: str = "") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    here = next((str(i.ConceptCodeSequence[0].CodeMeaning) for i in items if i.get("ValueType") == "CODE"
                 and i.ConceptNameCodeSequence[0].CodeValue == "363698007" and i.get("ConceptCodeSequence")), site)  # Finding Site
    for item in items:
        if item.get("ValueType") == "NUM" and item.get("MeasuredValueSequence"):
            name, mv = item.ConceptNameCodeSequence[0], item.MeasuredValueSequence[0]
            unit = mv.MeasurementUnitsCodeSequence[0]
            found.append({"name": str(name.CodeMeaning), "code": f"{name.CodingSchemeDesignator} {name.CodeValue}",
                          "value": float(mv.NumericValue), "unit": str(unit.CodeValue), **({"site": here} if here else {})})
        if item.get("ContentSequence"):
            found += _numeric_items(item.ContentSequence, here)
    return found
