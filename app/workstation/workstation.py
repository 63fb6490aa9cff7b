"""Alias module: ``from app.workstation.workstation import Workstation`` (name used by app/main.py)."""

from .component import CSS, HEAD, Workstation, image_payload, workstation_value  # noqa: F401
