"""A PACS over DICOMweb (dicomweb-client): pull studies into a study set (QIDO-RS + WADO-RS), push results (STOW-RS).

Pulled instances go through the same checks and de-identification as ``gazex import`` (interop/importer.py);
nothing from the PACS is stored before that. An unreachable server is one line naming the server.
"""

from __future__ import annotations

import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import urlsplit

import pydicom
import requests
from pydicom.dataset import Dataset

from .importer import Importer, ImportReport, Refused, reason_kind, quiet_original_header

DICOMWEB_ROOT = "dicom-web"
TIMEOUT_S = 30
CHEST_MODALITIES_FILTER = ("CR", "DX")


class PacsError(RuntimeError):
    """The PACS could not be reached or refused a request (one line naming the server)."""


@dataclass(frozen=True)
class Server:
    url: str  # base URL of the DICOMweb service, e.g. http://127.0.0.1:8042/dicom-web

    @property
    def name(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)

    def client(self):
        from dicomweb_client.api import DICOMwebClient

        client = DICOMwebClient(url=self.url.rstrip("/"), timeout=TIMEOUT_S)
        client.set_http_retry_params(retry=False)
        return client


def server(url: str) -> Server:
    if not url.startswith(("http://", "https://")):
        raise PacsError(f"PACS {url}: not an http(s) URL")
    return Server(url.rstrip("/"))


def _calling(srv: Server, what: str, call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except requests.exceptions.ConnectionError:
        raise PacsError(f"PACS {srv.name} unreachable ({what}: connection refused or no route)") from None
    except requests.exceptions.Timeout:
        raise PacsError(f"PACS {srv.name} did not answer within {TIMEOUT_S} s ({what})") from None
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise PacsError(f"PACS {srv.name} refused {what} (HTTP {status})") from None


def find_studies(srv: Server, filters: dict[str, Any] | None = None, limit: int | None = None) -> list[str]:
    """QIDO-RS: the Study Instance UIDs matching the filters (chest radiograph modalities unless given)."""
    filters = dict(filters or {})
    results = _calling(srv, "the study query", srv.client().search_for_studies, search_filters=filters or None,
                       limit=limit)
    uids = [_qido_value(item, "0020000D") for item in results]
    return [uid for uid in uids if uid]


def _qido_value(item: dict, tag: str) -> str | None:
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


def pull(service, url: str, *, study_set: str, data_dir: str | Path, filters: dict[str, Any] | None = None,
         limit: int | None = None, progress: bool = False) -> ImportReport:
    """Retrieves every matching study (WADO-RS) and imports its instances, de-identified, into ``study_set``."""
    srv = server(url)
    study_uids = find_studies(srv, filters, limit)
    importer = Importer(service, Path(data_dir), study_set)
    started = datetime.now(timezone.utc)
    report = ImportReport()
    with tempfile.TemporaryDirectory(prefix="gazex-pull-") as scratch, importer.staging_area() as staging:
        for number, study_uid in enumerate(_bar(study_uids, progress), start=1):
            with quiet_original_header():  # parsing the originals may warn quoting their values
                instances = _calling(srv, "a study retrieval", srv.client().retrieve_study, study_uid)
            for index, dataset in enumerate(instances, start=1):
                name = f"{srv.name} study {number}/{len(study_uids)} instance {index}"
                _import_retrieved(importer, dataset, Path(scratch), staging, name, report)
    reasons = Counter(reason_kind(reason) for _, reason in report.skipped)
    service.record_import_run(study_set, "dicomweb", len(report.imported), len(report.skipped), dict(reasons),
                              started)
    return report


def _import_retrieved(importer: Importer, dataset: Dataset, scratch: Path, staging: Path, name: str,
                      report: ImportReport) -> None:
    path = scratch / f"{uuid.uuid4().hex}.dcm"
    try:
        with quiet_original_header():
            dataset.save_as(path, enforce_file_format=True)
        imported, _ = importer.import_file(path, staging)
        report.imported.append(imported)
    except Refused as exc:
        report.skipped.append((name, str(exc)))
    except (ValueError, AttributeError, KeyError) as exc:
        report.skipped.append((name, f"the PACS sent an instance that cannot be stored ({type(exc).__name__})"))
    finally:
        path.unlink(missing_ok=True)


def push(url: str, datasets: Sequence[Dataset] | Iterable[str | Path]) -> int:
    """STOW-RS: stores the datasets (or DICOM files) on the server; returns how many it accepted."""
    srv = server(url)
    items = [item if isinstance(item, Dataset) else pydicom.dcmread(str(item)) for item in datasets]
    if not items:
        return 0
    response = _calling(srv, "the store", srv.client().store_instances, items)
    failed = response.get("FailedSOPSequence", []) if response is not None else []
    if failed:
        raise PacsError(f"PACS {srv.name} refused {len(failed)} of {len(items)} instances (STOW-RS failures)")
    return len(items)


def retrieve_instance(url: str, study_uid: str, series_uid: str, sop_uid: str) -> Dataset:
    srv = server(url)
    return _calling(srv, "an instance retrieval", srv.client().retrieve_instance, study_uid, series_uid, sop_uid)


def find_instances(url: str, study_uid: str) -> list[dict[str, str | None]]:
    """QIDO-RS instance query: series, instance and SOP class UIDs of a study's instances."""
    srv = server(url)
    results = _calling(srv, "the instance query", srv.client().search_for_instances, study_instance_uid=study_uid)
    return [{"series_uid": _qido_value(r, "0020000E"), "sop_uid": _qido_value(r, "00080018"),
             "sop_class_uid": _qido_value(r, "00080016")} for r in results]


def _bar(items: list[str], progress: bool):
    if progress:
        from tqdm import tqdm

        return tqdm(items, desc="pull", unit="study")
    return items
