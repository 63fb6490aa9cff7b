"""The study image route over real HTTP (the real Gradio app in review-only mode, a real SQLite file): it serves a
study's pixels only to a live login session, only under the study they belong to, and names that study."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import cv2
import httpx
import numpy as np
import pytest

from conftest_app import free_port

pytestmark = pytest.mark.slow

ADMIN = ("chief", "chief-pass-1")
READER = ("reader1", "reader-pass-1")


def _film(path, seed: int) -> str:
    pixels = np.random.default_rng(seed).integers(0, 4096, size=(96, 80), dtype=np.uint16)
    assert cv2.imwrite(str(path), pixels)
    return str(path)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from annotations_db import ReviewService
    from app.main import build_app, launch_app
    from app.runtime import build_context

    tmp = tmp_path_factory.mktemp("image_route")
    service = ReviewService.open(f"sqlite:///{tmp / 'gazex.sqlite3'}")
    service.create_reader(*ADMIN, "admin")
    service.create_reader(*READER, "reader", acting=ADMIN[0])
    studies = [service.register_study(f"1.2.826.0.1.{k}", _film(tmp / f"film{k}.png", k), width=80, height=96)
               for k in (1, 2)]
    context = build_context(service, None, review_only=True)
    demo = build_app(context)
    port = free_port()
    launch_app(demo, context, port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}", context, studies
    finally:
        demo.close()
        service.close()


@contextmanager
def signed_in(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=60) as client:
        response = client.post("/login", data={"username": READER[0], "password": READER[1]})
        assert response.status_code == 200, response.text
        yield client


def image_path(context, study) -> str:
    return "/" + context.image_payload(study.image_path).reference(study.study_uid)["url"]


def test_a_signed_in_reader_gets_the_studys_own_stored_values_named_by_the_study(app):
    url, context, (first, _) = app
    with signed_in(url) as client:
        response = client.get(image_path(context, first))
    assert response.status_code == 200, response.text
    assert response.headers["x-gazex-study-key"] == first.study_uid
    assert response.headers["content-encoding"] == "gzip"  # httpx asks for gzip and inflates it
    served = np.frombuffer(response.content, dtype="<u2").reshape(96, 80)
    assert np.array_equal(served, cv2.imread(first.image_path, cv2.IMREAD_UNCHANGED))


def test_without_a_live_session_the_route_refuses(app):
    url, context, (first, _) = app
    path = image_path(context, first)
    with httpx.Client(base_url=url, timeout=60) as stranger:
        refused = stranger.get(path)
        assert refused.status_code == 401 and "not signed in" in refused.text
        assert "x-gazex-study-key" not in refused.headers
        stranger.cookies.set(f"access-token-unsecure-{_cookie_id(context, url)}", "forged-token")
        assert stranger.get(path).status_code == 401
    with signed_in(url) as client:
        assert client.get(path).status_code == 200
        client.get("/logout")
        assert client.get(path).status_code == 401  # the session ended: the image goes with it


def test_an_image_is_never_served_under_another_study(app):
    url, context, (first, second) = app
    first_hash = context.image_payload(first.image_path).sha256
    second_hash = context.image_payload(second.image_path).sha256
    with signed_in(url) as client:
        swapped = client.get(f"/gazex/image/{first.study_uid}/{second_hash}")
        assert swapped.status_code == 404
        assert swapped.text == f"image {second_hash} is not the image of study {first.study_uid}"
        assert client.get(f"/gazex/image/{second.study_uid}/{first_hash}").status_code == 404
        unknown = client.get(f"/gazex/image/9.9.9/{first_hash}")
        assert unknown.status_code == 404 and unknown.text == "no study '9.9.9'"
        assert client.get(f"/gazex/image/{first.study_uid}/not-a-hash").status_code == 400
        assert client.get(f"/gazex/image/{second.study_uid}/{second_hash}").status_code == 200


def test_the_current_image_of_a_study_names_its_study_and_hash(app):
    """What the browser fetches at the click, before the value names the hash: the same pixels, study and hash."""
    url, context, (first, second) = app
    with signed_in(url) as client:
        current = client.get(f"/gazex/image/{second.study_uid}")
        assert current.status_code == 200, current.text
        assert current.headers["x-gazex-study-key"] == second.study_uid
        assert current.headers["x-gazex-image-sha256"] == context.image_payload(second.image_path).sha256
        assert current.headers["cache-control"] == "private, no-store"
        assert current.content == client.get(image_path(context, second)).content
        assert not np.array_equal(np.frombuffer(current.content, dtype="<u2"),
                                  np.frombuffer(client.get(f"/gazex/image/{first.study_uid}").content, dtype="<u2"))
        unknown = client.get("/gazex/image/9.9.9")
        assert unknown.status_code == 404 and unknown.text == "no study '9.9.9'"
    with httpx.Client(base_url=url, timeout=60) as stranger:
        refused = stranger.get(f"/gazex/image/{first.study_uid}")
        assert refused.status_code == 401 and "x-gazex-study-key" not in refused.headers


def _cookie_id(context, url: str) -> str:
    """The app's cookie id, read from the cookie names the sign-in sets."""
    with signed_in(url) as client:
        names = [name for name in client.cookies.keys() if name.startswith("access-token-unsecure-")]
    assert len(names) == 1
    return names[0].removeprefix("access-token-unsecure-")
