"""The upload-and-segment app (``notebooks/10_segment_app.ipynb``, served by Voilà): its logic, kept out of
the notebook and tested without a browser.

* :mod:`.upload` — uploaded files → a private folder → a validated case (zip safety checks; every image
  check is :mod:`brats_lib.io`'s);
* :mod:`.runs` — trained run directories: listing and a plain description of what each was trained on;
* :mod:`.job` — one segmentation with stages, progress and cancel, in a worker thread;
* :mod:`.results` — volumes per region (mL), the volumes table and CSV, lesion-wise scores, downloads;
* :mod:`.preview` — the augmentation preview (the data pipeline's transforms with hand-set parameters);
* :mod:`.widgets` — the ipywidgets page (:class:`SegmentApp`) that puts them together.
"""

from .job import Cancelled, SegmentationJob, SegmentationResult, segment
from .results import VOLUME_REGIONS, region_volumes, volumes_csv, volumes_html
from .runs import RunInfo, describe_run, find_runs
from .upload import (DEFAULT_MAX_UPLOAD_BYTES, ModalityChoiceNeeded, UploadedFile, Workspace, extract_zip,
                     stage_upload)

__all__ = [
    "Cancelled", "DEFAULT_MAX_UPLOAD_BYTES", "ModalityChoiceNeeded", "RunInfo", "SegmentationJob",
    "SegmentationResult", "UploadedFile", "VOLUME_REGIONS", "Workspace", "describe_run", "extract_zip",
    "find_runs", "region_volumes", "segment", "stage_upload", "volumes_csv", "volumes_html",
]
