"""IU X-Ray / Open-i ``ecgen-radiology`` XML reports (e.g. torchxrayvision's ``data/NLMCXR_reports.tgz``).

``root`` is a folder of ``<n>.xml`` files, or a ``.tgz`` holding ``ecgen-radiology/<n>.xml`` (read
in place, no extraction). One Study per report with an image: ``study_id`` = uId (``CXR1``),
``image_id`` = the frontal ``parentImage/@id`` (by the t-SNE view table when available, since the
DICOM view tags are noisy; else the first image), image at ``image_root/<image_id><image_ext>``.
FINDINGS / IMPRESSION become sentences, INDICATION the indication. Labels come from the manual
MeSH ``major`` terms where the mapping to CheXpert is obvious (``normal`` -> No Finding); other
labels stay unknown (None); the raw terms are kept in ``meta``. Reports without an image are
skipped and reported.
"""

from __future__ import annotations

import importlib.util
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from gazex_core.vocab import CHEXPERT_LABELS
from training.data.loaders.base import DatasetLoader, Issues, read_csv, register
from training.data.loaders.reports import report_from_sections
from training.data.types import LoadResult, Study

# First MeSH term (lower case) -> CheXpert label. Only the unambiguous ones.
MESH_TO_CHEXPERT: dict[str, str] = {
    "normal": "No Finding",
    "cardiomegaly": "Cardiomegaly",
    "pulmonary atelectasis": "Atelectasis",
    "atelectasis": "Atelectasis",
    "pleural effusion": "Pleural Effusion",
    "pneumothorax": "Pneumothorax",
    "pulmonary edema": "Edema",
    "edema": "Edema",
    "pulmonary congestion": "Edema",
    "consolidation": "Consolidation",
    "pneumonia": "Pneumonia",
    "opacity": "Lung Opacity",
    "airspace disease": "Lung Opacity",
    "infiltrate": "Lung Opacity",
    "nodule": "Lung Lesion",
    "mass": "Lung Lesion",
    "fractures, bone": "Fracture",
    "catheters, indwelling": "Support Devices",
    "surgical instruments": "Support Devices",
    "implanted medical device": "Support Devices",
    "medical device": "Support Devices",
    "tube, inserted": "Support Devices",
    "stents": "Support Devices",
}
FRONTAL_TSNE_VIEWS = {"PA", "AP"}


def default_view_table() -> Path | None:
    """torchxrayvision's t-SNE view table, located without importing the package (it imports torch)."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "nlmcxr_tsne_pa.csv.gz"
    return path if path.exists() else None


def mesh_label(term: str) -> str | None:
    """'Cardiomegaly/borderline' -> Cardiomegaly; 'Thickening/pleura' -> Pleural Other; else mapped or None."""
    parts = [p.strip().lower() for p in term.split("/")]
    head = parts[0]
    if head in MESH_TO_CHEXPERT:
        return MESH_TO_CHEXPERT[head]
    qualifiers = parts[1:]
    if head in ("thickening", "cicatrix") and "pleura" in qualifiers:
        return "Pleural Other"  # pleural thickening / pleural scarring
    if head in ("density", "cicatrix") and qualifiers[:1] == ["lung"]:
        return "Lung Opacity"  # CheXpert's "increased density" and "parenchymal scarring"
    if head == "cardiac shadow" and "enlarged" in qualifiers:
        return "Cardiomegaly"  # an enlarged cardiac silhouette
    if head == "mediastinum" and not {"lymph nodes", "paratracheal"} & set(qualifiers) \
            and {"enlarged", "widened", "prominent"} & set(qualifiers):
        return "Enlarged Cardiomediastinum"  # "Mediastinum/lymph nodes/enlarged" is adenopathy, not a wide mediastinum
    return None


def mesh_term_labels(term: str) -> set[str]:
    """Every CheXpert observation one MeSH term names: a round opacity or density (the indexers' code for a
    nodular one, e.g. 'Opacity/lung/middle lobe/right/round' for "1 cm right middle lobe nodular opacity") is
    a Lung Lesion as well."""
    labels = {mesh_label(term)} - {None}
    parts = [p.strip().lower() for p in term.split("/")]
    if parts[0] in ("opacity", "density") and "round" in parts[1:]:
        labels.add("Lung Lesion")
    return labels


def mesh_labels(major_terms: list[str]) -> dict[str, float | None]:
    mapped = set().union(*(mesh_term_labels(t) for t in major_terms))
    if mapped == {"No Finding"}:
        return {label: (1.0 if label == "No Finding" else 0.0) for label in CHEXPERT_LABELS}
    labels: dict[str, float | None] = {label: 1.0 for label in mapped if label != "No Finding"}
    if labels:
        labels["No Finding"] = 0.0
    return labels


@register("iu-xray", "iu", "openi")
@dataclass
class IuXrayLoader(DatasetLoader):
    root: Path
    image_root: Path | None = None
    image_ext: str = ".png"
    view_table: Path | None = None  # imageid, tsne-view (default: torchxrayvision's nlmcxr_tsne_pa.csv.gz)
    source: str = field(default="iu-xray", init=False)

    def load(self) -> LoadResult:
        issues = Issues()
        views = self._views(issues)
        studies = []
        for name, data in self._xml_documents(issues):
            study = self._study(name, data, views, issues)
            if study is not None:
                studies.append(study)
        return LoadResult(studies, issues.finish())

    def _views(self, issues: Issues) -> dict[str, str]:
        path = self.view_table or default_view_table()
        if path is None:
            return {}
        frame = read_csv(Path(path), ["imageid", "tsne-view"], issues)
        return {} if frame is None else dict(zip(frame["imageid"].str.strip(), frame["tsne-view"].str.strip()))

    def _xml_documents(self, issues: Issues) -> Iterator[tuple[str, bytes]]:
        root = Path(self.root)
        if root.is_file() and tarfile.is_tarfile(root):
            yield from _tar_documents(root, issues)
        elif root.is_dir():
            files = sorted(root.glob("*.xml"), key=_numeric_key)
            if not files:
                issues.add(root, None, "no .xml reports found")
            for path in files:
                yield str(path), path.read_bytes()
        else:
            issues.add(root, None, "not a folder of XML reports nor a .tgz")

    def _study(self, name: str, data: bytes, views: dict[str, str], issues: Issues) -> Study | None:
        try:
            doc = ET.fromstring(data)
        except ET.ParseError as exc:
            issues.add(name, None, f"malformed XML: {exc}")
            return None
        uid = doc.find("uId")
        if uid is None or not uid.get("id"):
            issues.add(name, None, "no <uId id=...>")
            return None
        images = [el.get("id") for el in doc.iter("parentImage") if el.get("id")]
        if not images:
            issues.add(name, None, f"report {uid.get('id')} has no image (parentImage), skipped")
            return None
        frontal = [i for i in images if views.get(i) in FRONTAL_TSNE_VIEWS]
        image_id = (frontal or images)[0]
        sections = {(el.get("Label") or "").upper(): " ".join((el.text or "").split())
                    for el in doc.iter("AbstractText")}
        major = [(el.text or "").strip() for el in doc.iter("major") if (el.text or "").strip()]
        automatic = [(el.text or "").strip() for el in doc.iter("automatic") if (el.text or "").strip()]
        report = report_from_sections(sections.get("FINDINGS", ""), sections.get("IMPRESSION", ""),
                                      sections.get("INDICATION") or None,
                                      raw="\n".join(f"{k}: {v}" for k, v in sections.items()))
        return Study(
            study_id=uid.get("id"),
            source=self.source,
            image_path=Path(self.image_root) / f"{image_id}{self.image_ext}" if self.image_root else None,
            image_id=image_id,
            report=report,
            labels=mesh_labels(major),
            meta={"images": images, "view": views.get(image_id), "mesh_major": major,
                  "mesh_automatic": automatic, "comparison": sections.get("COMPARISON") or None, "file": name},
        )


def _tar_documents(path: Path, issues: Issues) -> Iterator[tuple[str, bytes]]:
    try:
        with tarfile.open(path) as archive:
            members = sorted((m for m in archive.getmembers() if m.isfile() and m.name.endswith(".xml")),
                             key=lambda m: _numeric_key(Path(m.name)))
            if not members:
                issues.add(path, None, "archive holds no .xml reports")
            for member in members:
                handle = archive.extractfile(member)
                if handle is not None:
                    yield f"{path}:{member.name}", handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        issues.add(path, None, f"unreadable archive: {exc}")


def _numeric_key(path: Path) -> tuple[int, str]:
    stem = path.stem
    return (int(stem), stem) if stem.isdigit() else (1 << 30, stem)
