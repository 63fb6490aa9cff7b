"""The study image: read through gazex_core.imaging, sized by the workstation, referenced by URL, cached."""

import gzip
import hashlib
import threading
import time

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from app.image_payload import PayloadCache, load_study_image


def write_dicom(path, pixels, photometric="MONOCHROME2", window=(1000, 1000)):
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = [0.139, 0.143]
    ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def test_dicom_is_read_downsampled_and_keeps_original_size_and_stored_values(tmp_path):
    ramp = np.tile(np.linspace(0, 4095, 1500), (2000, 1)).astype(np.uint16)
    write_dicom(tmp_path / "a.dcm", ramp)
    study_image = load_study_image(str(tmp_path / "a.dcm"))
    image = study_image.fields
    assert (image["width"], image["height"]) == (1500, 2000)
    assert image["disp_height"] == 1024 and image["disp_width"] == 768
    values = study_image.values
    assert values.shape == (1024, 768)
    # stored values, not the windowed display: the full 12-bit range reaches the browser, beyond the 500-1500 window
    assert values[:, 0].max() <= 3 and values[:, -1].min() >= 4090
    assert image["window"] == {"center": 1000.0, "width": 1000.0} and image["voi_function"] == "LINEAR"
    assert image["pixel_spacing_mm"] == pytest.approx([0.139, 0.143])
    assert image["photometric"] == "MONOCHROME2"


def test_monochrome1_goes_to_the_browser_as_stored_with_its_photometric(tmp_path):
    ramp = np.tile(np.linspace(0, 4095, 1500), (2000, 1)).astype(np.uint16)
    write_dicom(tmp_path / "m1.dcm", ramp, photometric="MONOCHROME1")
    image = load_study_image(str(tmp_path / "m1.dcm"))
    values = image.values
    assert values[:, -1].mean() > values[:, 0].mean() + 4000  # stored, not inverted: the browser inverts after the VOI
    assert image.fields["photometric"] == "MONOCHROME1"


def test_the_served_bytes_are_the_stored_values_and_the_reference_names_study_and_hash(tmp_path):
    ramp = np.tile(np.linspace(0, 4095, 300), (200, 1)).astype(np.uint16)
    write_dicom(tmp_path / "r.dcm", ramp)
    image = load_study_image(str(tmp_path / "r.dcm"))
    served = np.frombuffer(gzip.decompress(image.gzipped), dtype="<u2").reshape(200, 300)
    assert np.array_equal(served, ramp) and image.raw == served.tobytes()  # lossless, full bit depth
    assert image.sha256 == hashlib.sha256(b"300x200:" + image.raw).hexdigest()
    ref = image.reference("1.2.3.4")
    assert ref["url"] == f"gazex/image/1.2.3.4/{image.sha256}" and ref["study_key"] == "1.2.3.4"
    assert ref["encoding"] == "u16le" and "png_b64" not in ref and ref["disp_width"] == 300
    other = load_study_image(str(tmp_path / "r.dcm")).reference("9.9")
    assert other["url"] != ref["url"]  # the study key is part of the URL: one image under two studies never shares


def test_a_missing_or_broken_file_raises_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_study_image(str(tmp_path / "nope.dcm"))
    (tmp_path / "bad.dcm").write_bytes(b"not a dicom at all" * 10)
    with pytest.raises(ValueError, match="bad.dcm"):
        load_study_image(str(tmp_path / "bad.dcm"))


def test_cache_loads_each_path_once():
    calls = []

    def loader(path):
        calls.append(path)
        return {"path": path}

    cache = PayloadCache(loader, size=2)
    assert cache("a") is cache("a")
    cache("b"), cache("c"), cache("a")
    assert calls == ["a", "b", "c", "a"]


def test_warming_builds_an_image_once_in_the_background():
    calls, release = [], threading.Event()

    def loader(path):
        release.wait(30)
        calls.append(path)
        return {"path": path}

    cache = PayloadCache(loader, size=4)
    cache.warm("next.dcm")
    cache.warm("next.dcm")  # already being built: not a second time
    assert "next.dcm" not in cache
    release.set()
    deadline = time.monotonic() + 30
    while "next.dcm" not in cache and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache("next.dcm") == {"path": "next.dcm"} and calls == ["next.dcm"]
    cache.warm("next.dcm")  # cached: nothing to do
    assert calls == ["next.dcm"]


def test_callers_at_the_same_time_share_one_build():
    """The open handler and the image route (the browser fetches at the click) asking at once: one build."""
    calls, started, release = [], threading.Event(), threading.Event()

    def loader(path):
        calls.append(path)
        started.set()
        release.wait(30)
        return {"path": path}

    cache = PayloadCache(loader, size=4)
    results = []
    first = threading.Thread(target=lambda: results.append(cache("a.dcm")))
    first.start()
    assert started.wait(30)
    second = threading.Thread(target=lambda: results.append(cache("a.dcm")))
    second.start()
    second.join(0.2)
    assert second.is_alive()  # waiting for the running build, not building again
    release.set()
    first.join(30), second.join(30)
    assert calls == ["a.dcm"] and results[0] is results[1]


def test_a_failed_build_fails_its_waiters_and_the_next_call_tries_again():
    started, release = threading.Event(), threading.Event()
    attempts = []

    def loader(path):
        attempts.append(path)
        if len(attempts) == 1:
            started.set()
            release.wait(30)
            raise ValueError(f"{path}: not a DICOM file")
        return {"path": path}

    cache = PayloadCache(loader, size=4)
    errors = []

    def call():
        try:
            cache("bad.dcm")
        except ValueError as exc:
            errors.append(str(exc))

    first = threading.Thread(target=call)
    first.start()
    assert started.wait(30)
    second = threading.Thread(target=call)
    second.start()
    second.join(0.2)
    release.set()
    first.join(30), second.join(30)
    assert errors == ["bad.dcm: not a DICOM file"] * 2 and attempts == ["bad.dcm"]
    assert cache("bad.dcm") == {"path": "bad.dcm"}  # an error is not cached


def test_a_reader_does_not_wait_for_the_low_priority_warm_up():
    """The warm-up builds at low CPU priority; opening that study meanwhile builds it at normal priority."""
    warm_started, release = threading.Event(), threading.Event()
    calls = []

    def loader(path):
        calls.append(threading.current_thread().name)
        if threading.current_thread().name == "gazex-image-warm":
            warm_started.set()
            release.wait(30)
        return {"path": path, "by": threading.current_thread().name}

    cache = PayloadCache(loader, size=4)
    cache.warm("next.dcm")
    assert warm_started.wait(30)
    assert cache("next.dcm")["by"] == threading.current_thread().name  # built here, the warm-up still blocked
    release.set()
    deadline = time.monotonic() + 30
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert cache("next.dcm")["by"] == threading.current_thread().name  # the first result is kept
