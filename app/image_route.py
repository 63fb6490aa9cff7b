"""The image route: ``GET /gazex/image/{study_key}/{sha256}`` serves a study's display pixels to the workstation.

``GET /gazex/image/{study_key}`` (no hash) answers the study's current image with its hash in
``X-Gazex-Image-Sha256``: the browser asks for it the moment a worklist row is clicked, in parallel with Gradio's
event round trip, and uses the bytes only if the value that then arrives names the same study and the same hash.

The workstation value names the image (app/image_payload.py ``StudyImage.reference``); the browser fetches the
pixels here, outside Gradio's event round trip. The route answers only a live login session (the cookie that
app/auth.py's gate checked), only for a study that exists, and only when the hash is that study's image: a URL
can never return another patient's pixels. The answer names its study (``X-Gazex-Study-Key``), and the browser
shows the pixels only under that study. Content-addressed, so the browser may cache it.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .context import AppContext, request_username
from .image_payload import ENCODING, ROUTE_PREFIX

log = logging.getLogger(__name__)

STUDY_KEY_HEADER = "X-Gazex-Study-Key"
IMAGE_HASH_HEADER = "X-Gazex-Image-Sha256"
SHA256 = re.compile(r"[0-9a-f]{64}")


def image_routes(context: AppContext) -> list[Route]:
    """The route for FastAPI's ``routes`` (launch_app passes it in ``app_kwargs``; registered before Gradio's)."""

    async def study_image(request: Request) -> Response:
        digest = request.path_params["digest"]
        if not SHA256.fullmatch(digest):
            return PlainTextResponse(f"image {digest[:80]!r}: not a SHA-256", 400)
        found = await _study_image(request)
        if isinstance(found, Response):
            return found
        study_key, image = found
        if image.sha256 != digest:
            return PlainTextResponse(f"image {digest} is not the image of study {study_key}", 404)
        return _pixels(request, image, study_key, IMMUTABLE)

    async def current_image(request: Request) -> Response:
        found = await _study_image(request)
        if isinstance(found, Response):
            return found
        study_key, image = found
        return _pixels(request, image, study_key, "private, no-store")

    async def _study_image(request: Request) -> tuple[str, Any] | Response:
        """(the study key, its built image), or the refusal: not signed in, no such study, unreadable image."""
        if not request_username(request):
            return PlainTextResponse("not signed in", 401)
        study_key = request.path_params["study_key"]
        study = await anyio.to_thread.run_sync(context.service.find_study, study_key)
        if study is None:
            return PlainTextResponse(f"no study {study_key[:80]!r}", 404)
        try:
            image = await anyio.to_thread.run_sync(functools.partial(context.image_payload, study.image_path))
        except (OSError, ValueError) as exc:
            log.warning("image of study %s unreadable: %s", study_key, exc)
            return PlainTextResponse(f"the image of study {study_key} could not be read", 500)
        return study_key, image

    return [Route(ROUTE_PREFIX + "/{study_key}/{digest}", study_image, methods=["GET"]),
            Route(ROUTE_PREFIX + "/{study_key}", current_image, methods=["GET"])]


IMMUTABLE = "private, max-age=86400, immutable"  # the hashed URL names its content


def _pixels(request: Request, image: Any, study_key: str, cache_control: str) -> Response:
    headers = {STUDY_KEY_HEADER: study_key, IMAGE_HASH_HEADER: image.sha256, "X-Gazex-Encoding": ENCODING,
               "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(image.gzipped, media_type="application/octet-stream", headers=headers)
    return Response(image.raw, media_type="application/octet-stream", headers=headers)
