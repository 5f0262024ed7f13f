"""Typed errors. Every bad input raises a subclass of :class:`MedsegError` whose message is one
line naming the bad value and what is allowed; the CLI prints it and exits non-zero."""

from __future__ import annotations

import errno


class MedsegError(ValueError):
    """Base class of all user-facing medseg errors (one-line message)."""


class ImageReadError(MedsegError):
    """A file or folder could not be read as an image (missing, corrupt, truncated, unknown)."""


class MixedSeriesError(ImageReadError):
    """A DICOM folder holds several series that do not form one volume (a scanner export):
    ``--series`` picks one, ``medseg info`` lists them."""


class MixedStudiesError(MixedSeriesError):
    """A DICOM folder holds the images of several studies (a patient's baseline and follow-up):
    never one volume; ``medseg info`` lists the studies."""


class ManyStudiesError(ImageReadError):
    """A folder whose sub-folders hold several DICOM studies (a PACS export of patients and
    studies): ``medseg info`` lists them, ``medseg batch`` takes each one."""


class SeriesNotFoundError(ImageReadError):
    """A DICOM folder holds no series that ``--series`` names (``batch``: that folder is
    skipped, as another series of a study exported one folder per series)."""


class EmptyImageError(MedsegError):
    """The image, or the slice a prompt is on, holds no signal: every voxel has the same value
    (a blank or padding slice, an all-zero export). Nothing there can be segmented."""


class ImageWriteError(MedsegError):
    """An output cannot be written in the requested format (unsupported ending, a DICOM SEG
    for a non-DICOM input, provenance that is not JSON)."""


class OutputDiskFull(ImageWriteError):
    """The output disk is full or read-only: a batch stops instead of failing every later case."""


#: errors of a write that finds the disk full or read-only (a batch stops: later cases would fail alike)
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


class Interrupted(MedsegError):
    """Ctrl-C, caught by a command that says what the interruption left (exit code 130)."""


class GeometryError(MedsegError):
    """Missing/zero spacing, a singular affine, or two inputs whose grids do not match."""


class LocalizerError(GeometryError):
    """A localizer (scout) series: images in several planes, no stack or cine to segment
    (``batch``: such a series folder is skipped, not failed)."""


class LabelMapError(MedsegError):
    """A label-map string/JSON is malformed, or names a label that is not present."""


class PromptError(MedsegError):
    """A prompt is malformed or lies outside the image."""


class CheckpointError(MedsegError):
    """A checkpoint or adapter has wrong keys, a wrong sha256, or belongs to another base model."""
