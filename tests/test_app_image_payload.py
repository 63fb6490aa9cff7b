"""The workstation image payload: lossless 16-bit packing, display size, presets."""

import base64

import numpy as np

from app.image_payload import (
    DISPLAY_MAX,
    PayloadCache,
    build_payload,
    display_size,
    pack_rgb16_png,
    unpack_rgb16_png,
)


def test_rgb16_png_round_trip_is_lossless():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 65536, size=(37, 53), dtype=np.uint16)
    values[0, 0], values[0, 1] = 0, 65535
    assert np.array_equal(unpack_rgb16_png(pack_rgb16_png(values)), values)


def test_display_size_keeps_aspect_and_never_upscales():
    assert display_size(2544, 3056) == (round(2544 * DISPLAY_MAX / 3056), DISPLAY_MAX)
    assert display_size(300, 200) == (300, 200)


def test_payload_reports_original_size_and_downsampled_png():
    stored = np.tile(np.linspace(0, 4095, 2000, dtype=np.float32), (1500, 1)).astype(np.uint16)
    payload = build_payload(stored, window=(2048, 4096), pixel_spacing_mm=(0.14, 0.14))
    assert (payload["width"], payload["height"]) == (2000, 1500)
    assert (payload["disp_width"], payload["disp_height"]) == (1024, 768)
    small = unpack_rgb16_png(base64.b64decode(payload["png_b64"]))
    assert small.shape == (768, 1024)
    assert abs(int(small[0, -1]) - 4095) <= 3 and int(small[0, 0]) <= 3
    assert payload["window"] == {"center": 2048.0, "width": 4096.0}
    lung, bone = payload["presets"]["lung"], payload["presets"]["bone"]
    assert bone[1] > lung[1] > payload["presets"]["mediastinum"][1]


def test_cache_loads_each_path_once():
    calls = []

    def loader(path):
        calls.append(path)
        return {"path": path}

    cache = PayloadCache(loader, size=2)
    assert cache("a") is cache("a")
    cache("b"), cache("c"), cache("a")
    assert calls == ["a", "b", "c", "a"]
