"""Unit tests for the workstation's Python side: rgb16 PNG packing, image payload, presets, value builder."""

import base64

import numpy as np
import pytest

from app.workstation import (SERVER_FUNCTION_NAMES, Workstation, bundled_js, image_payload, pack_rgb16_png,
                             unpack_rgb16_png, window_presets, workstation_value)
from workstation_demo import sample_bundle, synthetic_cxr


def test_rgb16_round_trip_is_exact():
    rng = np.random.default_rng(1)
    values = rng.integers(0, 65536, size=(97, 131), dtype=np.uint16)
    values[0, 0], values[0, 1], values[1, 0] = 0, 65535, 256
    back = unpack_rgb16_png(pack_rgb16_png(values))
    assert back.dtype == np.uint16
    assert np.array_equal(back, values)


def test_rgb16_layout_is_r_high_g_low():
    import cv2

    png = pack_rgb16_png(np.array([[0x1234, 0xABCD]], dtype=np.uint16))
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert bgr[0, 0].tolist() == [0, 0x34, 0x12]   # B, G = low, R = high
    assert bgr[0, 1].tolist() == [0, 0xCD, 0xAB]


def test_payload_downscales_for_display_and_keeps_original_size():
    raw = synthetic_cxr(1000, 1200, bits=12)
    p = image_payload(raw, pixel_spacing_mm=(0.2, 0.2))
    assert (p["width"], p["height"]) == (1000, 1200)
    assert max(p["disp_width"], p["disp_height"]) == 1024
    assert p["disp_width"] == round(1000 * 1024 / 1200)
    small = unpack_rgb16_png(base64.b64decode(p["png_b64"]))
    assert small.shape == (p["disp_height"], p["disp_width"])
    assert abs(int(small.mean()) - int(raw.mean())) < 20          # INTER_AREA keeps the stored-value scale
    assert p["encoding"] == "rgb16" and p["photometric"] == "MONOCHROME2"
    assert p["pixel_spacing_mm"] == [0.2, 0.2]


def test_small_image_is_not_upscaled_and_is_exact():
    raw = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 17
    p = image_payload(raw, window=(1000, 2000))
    assert (p["disp_width"], p["disp_height"]) == (64, 48)
    assert np.array_equal(unpack_rgb16_png(base64.b64decode(p["png_b64"])), raw)
    assert p["window"] == {"center": 1000.0, "width": 2000.0}


def test_uint8_and_float_inputs_map_to_full_16_bit_range():
    p8 = image_payload(np.array([[0, 255]], dtype=np.uint8))
    assert unpack_rgb16_png(base64.b64decode(p8["png_b64"])).tolist() == [[0, 65535]]
    pf = image_payload(np.array([[0.0, 1.0]], dtype=np.float32))
    assert unpack_rgb16_png(base64.b64decode(pf["png_b64"])).tolist() == [[0, 65535]]


def test_window_presets_are_ordered_and_inside_the_data():
    raw = synthetic_cxr(600, 720, bits=12)
    presets = window_presets(raw)
    assert set(presets) == {"lung", "mediastinum", "bone"}
    lo, hi = float(raw.min()), float(raw.max())
    for center, width in presets.values():
        assert lo <= center <= hi and width > 0
    assert presets["mediastinum"][1] < presets["lung"][1]          # narrower window on the dense half
    assert presets["lung"][0] <= presets["mediastinum"][0] <= presets["bone"][0]
    p = image_payload(raw)
    assert p["window"] == {"center": presets["lung"][0], "width": presets["lung"][1]}  # no VOI -> lung preset


def _write_dicom(path, pixels, photometric, center=None, width=None, spacing=(0.139, 0.14), slope=1, intercept=0):
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if center is not None:
        ds.WindowCenter, ds.WindowWidth = center, width
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelSpacing = list(spacing)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    assert pydicom.dcmread(str(path)).pixel_array.shape == pixels.shape


def test_dicom_keeps_stored_values_voi_window_and_monochrome1(tmp_path):
    raw = (np.arange(128 * 96, dtype=np.uint16).reshape(96, 128) * 3) % 4096  # >= 64 px a side: a readable image
    path = tmp_path / "cr.dcm"
    _write_dicom(path, raw, "MONOCHROME1", center=1500, width=2500)
    p = image_payload(path)
    assert p["photometric"] == "MONOCHROME1"                  # the browser inverts after the VOI window
    assert p["window"] == {"center": 1500.0, "width": 2500.0}
    assert p["pixel_spacing_mm"] == [0.139, 0.14]
    assert np.array_equal(unpack_rgb16_png(base64.b64decode(p["png_b64"])), raw)


def test_dicom_without_voi_falls_back_to_lung_preset(tmp_path):
    raw = synthetic_cxr(80, 96, bits=12)
    path = tmp_path / "dx.dcm"
    _write_dicom(path, raw, "MONOCHROME2")
    p = image_payload(path)
    assert p["photometric"] == "MONOCHROME2"
    assert [p["window"]["center"], p["window"]["width"]] == p["presets"]["lung"]


def test_value_restores_decisions_and_normalises_to_bundle_size():
    bundle = sample_bundle()
    img = image_payload(synthetic_cxr(500, 600))
    v = workstation_value(bundle, img, session_id=7, study_key="k1",
                          sentence_state={"s2": {"status": "edited", "final_text": "Moderate effusion."},
                                          "s4": {"status": "deleted"}},
                          box_state={"s3": {"status": "moved", "x_min": 0.1, "y_min": 0.2, "x_max": 0.3, "y_max": 0.4}},
                          added_sentences=[{"id": "a1", "text": "No pneumothorax."}],
                          added_boxes=[{"id": "b1", "sentence_id": "a1", "x_min": 0.5, "y_min": 0.5, "x_max": 0.6, "y_max": 0.6}])
    by_id = {s["id"]: s for s in v["sentences"]}
    assert by_id["s2"]["status"] == "edited" and by_id["s2"]["final_text"] == "Moderate effusion."
    assert by_id["s2"]["text"].startswith("Small right pleural effusion")
    assert by_id["s4"]["status"] == "deleted" and by_id["s1"]["status"] == "pending"
    assert by_id["a1"]["status"] == "added"
    boxes = {b["id"]: b for b in v["boxes"]}
    assert set(boxes) == {"s2", "s3", "s4", "b1"}                 # one box per sentence with an observation box
    assert (boxes["s3"]["status"], boxes["s3"]["x_min"]) == ("moved", 0.1)
    assert boxes["s2"]["x_min"] == bundle["sentences"][1]["observation_box"]["x_min"]
    assert boxes["b1"]["status"] == "added" and boxes["b1"]["sentence_id"] == "a1"
    assert (v["session_id"], v["study_key"], v["readonly"]) == (7, "k1", False)
    v2 = workstation_value(bundle, synthetic_cxr(500, 600), session_id=1, study_key="k")
    assert (v2["image"]["width"], v2["image"]["height"]) == (2000, 2400)  # the bundle's original size wins


def test_component_bundles_js_and_css_and_checks_function_names():
    js = bundled_js()
    assert js.startswith("const GX_CSS = ") and "gazexWorkstation" in js and ".gx-ws" in js
    assert "http://" not in js.replace("http://www.w3.org", "") and "https://" not in js  # nothing from a CDN

    def record_event(data):
        return {"ok": True}

    ws = Workstation(server_functions=[record_event])
    assert [f.__name__ for f in ws.server_fns] == ["record_event"]
    assert callable(ws.signed_off)                                   # custom event for the app's next-case flow

    def bogus(data):
        return None

    with pytest.raises(ValueError):
        Workstation(server_functions=[bogus])
    assert set(SERVER_FUNCTION_NAMES) == {"record_event", "decide_sentence", "add_sentence", "decide_box", "ask", "sign_off"}
