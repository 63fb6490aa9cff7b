"""Model version registry helpers on top of ReviewService (promotion gate check, rows for listing)."""

from __future__ import annotations

from annotations_db.service import InvalidTransition


def gate_of(version) -> dict | None:
    """{"passed", "reasons"} of a fine-tuned candidate (None for versions that were not fine-tuned here)."""
    metrics = version.metrics or {}
    if "gate_passed" not in metrics:
        return None
    return {"passed": bool(metrics["gate_passed"]), "reasons": list(metrics.get("gate_reasons") or [])}


def promote(service, version_id: int, force: bool = False):
    """Promotes a version; a fine-tuned candidate that failed its gate needs force=True."""
    version = service.get_model_version(version_id)
    gate = gate_of(version)
    if gate is not None and not gate.get("passed") and not force:
        raise InvalidTransition(f"version {version_id} failed its promotion gate ({'; '.join(gate.get('reasons', []))});"
                                " use --force to promote anyway")
    return service.promote_model_version(version_id)


def version_rows(service) -> list[dict]:
    rows = []
    for v in service.list_model_versions():
        gate = gate_of(v)
        rows.append({"id": v.id, "status": v.status, "parent": v.parent_id, "version": v.version,
                     "gate": "-" if gate is None else ("passed" if gate.get("passed") else "failed"),
                     "path": v.path or "", "hash": v.weights_hash[:12]})
    return rows
