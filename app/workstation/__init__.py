"""GazeX Review workstation component (viewer + trajectory + boxes + report panel) — see docs/workstation.md."""

from .component import (CSS, HEAD, SERVER_FUNCTION_NAMES, SIGNED_OFF_EVENT, Workstation, bundled_css, bundled_js,
                        display_image, image_payload, pack_rgb16_png, unpack_rgb16_png, window_presets, workstation_value)

__all__ = ["CSS", "HEAD", "SERVER_FUNCTION_NAMES", "SIGNED_OFF_EVENT", "Workstation", "bundled_css", "bundled_js",
           "display_image", "image_payload", "pack_rgb16_png", "unpack_rgb16_png", "window_presets", "workstation_value"]
