"""The one image pipeline (gazex_core.imaging) on real files: pydicom's whole test corpus, pydicom-data's real
films (RG1: an adult PA chest CR, MONOCHROME1, 15-bit, with JPEG 2000 twins), and the header scope checks.

Reference conversions are pydicom's own: ``pixel_array(ds, as_rgb=False)`` + ``convert_color_space`` for YBR,
``apply_color_lut`` for PALETTE COLOR, ``apply_voi_lut`` / ``apply_windowing`` for the VOI.
"""

from __future__ import annotations

import base64
import warnings
from pathlib import Path

import cv2
import data_store
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, convert_color_space, pixel_array
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from gazex_core.evidence import SCHEMA, EvidenceBundle
from gazex_core.imaging import (ImageInputError, ImageLimits, OutOfScopeError, drafting_scope, load_image,
                                window_function)

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
PYDICOM_DATA = Path(data_store.__file__).parent / "data"  # pydicom-data, listed directly (no network look-up)


def corpus() -> list[Path]:
    files = [p for root in (PYDICOM_FILES, PYDICOM_DATA) for p in sorted(root.rglob("*")) if p.is_file()]
    assert len(files) > 200
    return files


def corpus_file(name: str) -> Path:
    for root in (PYDICOM_FILES, PYDICOM_DATA):
        hits = sorted(root.rglob(name))
        if hits:
            return hits[0]
    raise FileNotFoundError(name)


def quiet_read(path: Path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about odd VRs in its deliberately broken files
        return load_image(path, **kwargs)


# --------------------------------------------------------------------------- the whole corpus


def test_every_corpus_file_is_read_or_refused_in_one_line():
    read, refused, crashed = [], [], []
    for path in corpus():
        try:
            image = quiet_read(path)
        except ImageInputError as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith(f"{path.name}: ") and len(message) > len(path.name) + 12, message
            refused.append(message)
        except Exception as exc:  # noqa: BLE001 - any other exception is a traceback the user would see
            crashed.append(f"{path.name}: {type(exc).__name__}: {exc}")
        else:
            assert image.pixels.dtype == np.float32 and 0.0 <= image.pixels.min() <= image.pixels.max() <= 1.0
            read.append(path.name)
    assert crashed == []
    assert len(read) >= 85 and len(refused) >= 140  # 90 and 154 on pydicom 3.0 + pydicom-data 1.0
    # every transfer syntax the plugins cover decodes: JPEG baseline / extended 12-bit / lossless, JPEG-LS,
    # JPEG 2000 (grey and YBR_RCT), RLE, deflate, big endian
    for name in ("SC_rgb_jpeg_dcmtk.dcm", "JPGExtended.dcm", "JPEG-LL.dcm", "SC_rgb_jpeg_gdcm.dcm",
                 "MR_small_jpeg_ls_lossless.dcm", "RG1_J2KR.dcm", "RG1_J2KI.dcm", "US1_J2KR.dcm", "GDCMJ2K_TextGBR.dcm",
                 "MR_small_RLE.dcm", "image_dfl.dcm", "MR_small_bigendian.dcm", "OT-PAL-8-face.dcm"):
        assert name in read, name


@pytest.mark.parametrize("name, reason", [
    ("emri_small_jpeg_2k_lossless.dcm", "multi-frame DICOM (10 frames)"),
    ("examples_ybr_color.dcm", "multi-frame DICOM (30 frames)"),
    ("rtplan.dcm", "no pixel data (Modality RTPLAN)"),
    ("MR_truncated.dcm", "pixel data could not be decoded [Explicit VR Little Endian] (ValueError: The number of bytes"),
    ("badVR.dcm", "NumberOfFrames is '1A', not a whole number"),
    ("README.txt", "no pixel data"),
    ("SC_rgb_small_odd.dcm", "image is 3x3 px, too small"),
])
def test_refusals_name_the_file_and_the_reason(name, reason):
    with pytest.raises(ImageInputError) as exc:
        quiet_read(corpus_file(name))
    assert str(exc.value).startswith(f"{name}: {reason}")


def test_a_decoder_failure_keeps_the_decoders_own_reason_on_one_line():
    with pytest.raises(ImageInputError) as exc:
        quiet_read(corpus_file("JPEG-lossy.dcm"))
    message = str(exc.value)
    assert "\n" not in message
    assert "JPEG Extended" in message and "misplaced marker segment" in message and "12-bit precision" in message


# --------------------------------------------------------------------------- colour: YBR once, palette LUT

YBR_FILES = ["SC_rgb_dcmtk_+eb+cy+n1.dcm", "SC_rgb_dcmtk_+eb+cy+n2.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm",
             "SC_rgb_dcmtk_+eb+cy+s2.dcm", "SC_rgb_dcmtk_+eb+cy+s4.dcm", "SC_rgb_jpeg_dcmtk.dcm",
             "SC_rgb_jpeg_lossy_gdcm.dcm", "SC_ybr_full_uncompressed.dcm", "SC_ybr_full_422_uncompressed.dcm"]


@pytest.mark.parametrize("name", YBR_FILES)
def test_ybr_is_converted_to_rgb_exactly_once(name):
    path = corpus_file(name)
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation.startswith("YBR_FULL")
    reference = convert_color_space(pixel_array(ds, as_rgb=False), ds.PhotometricInterpretation, "RGB")
    image = quiet_read(path)
    assert image.photometric == ds.PhotometricInterpretation and image.stored.shape == reference.shape
    assert np.abs(image.stored.astype(int) - reference.astype(int)).max() <= 1  # tolerance: 1 of 255 levels
    twice = convert_color_space(image.stored, "YBR_FULL", "RGB")
    assert np.abs(twice.astype(int) - reference.astype(int)).max() > 50  # what converting again would do


def test_ybr_jpeg_matches_dcmtks_own_decompression():
    """dcmtk decompressed the same JPEG YBR files to RGB (the *_dcmd.dcm twins): an independent reference."""
    for jpeg, dcmd in (("+eb+cy+n1", "ebcyn1"), ("+eb+cy+n2", "ebcyn2"), ("+eb+cy+np", "ebcynp"),
                       ("+eb+cy+s2", "ebcys2"), ("+eb+cy+s4", "ebcys4")):
        ours = quiet_read(corpus_file(f"SC_rgb_dcmtk_{jpeg}.dcm")).stored.astype(int)
        theirs = pydicom.dcmread(corpus_file(f"SC_rgb_dcmtk_{dcmd}_dcmd.dcm")).pixel_array.astype(int)
        assert np.abs(ours - theirs).max() <= 2, jpeg  # tolerance: 2 of 255 levels (IDCT rounding)


@pytest.mark.parametrize("name", ["OBXXXX1A.dcm", "OBXXXX1A_rle.dcm", "examples_palette.dcm", "OT-PAL-8-face.dcm",
                                  "gdcm-US-ALOKA-16.dcm"])
def test_palette_colour_goes_through_its_lut(name):
    path = corpus_file(name)
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:  # OT-PAL-8-face.dcm is a raw dataset without a meta header
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    indices = ds.pixel_array
    reference = apply_color_lut(indices, ds)
    image = quiet_read(path)
    assert image.photometric == "PALETTE COLOR"
    assert np.array_equal(image.stored, reference)  # exact
    assert any("palette colour" in w for w in image.warnings)
    if "SegmentedRedPaletteColorLookupTableData" not in ds:  # and by hand: red = LUT[index - first]
        n, first, _ = ds.RedPaletteColorLookupTableDescriptor
        red = np.frombuffer(ds.RedPaletteColorLookupTableData, dtype="<u2")[: n or 65536]
        assert np.array_equal(image.stored[..., 0], red[np.clip(indices.astype(int) - first, 0, red.size - 1)])
    grey_as_indices = window_function(indices.astype(np.float64), 127.5, 255, "LINEAR_EXACT")
    assert np.abs(image.pixels - grey_as_indices).mean() > 0.02  # not read as grey indices


# --------------------------------------------------------------------------- JPEG 2000 and the real film


@pytest.mark.parametrize("compressed, original, max_diff", [
    ("RG1_J2KR.dcm", "RG1_UNCR.dcm", 0),      # lossless: bit-identical
    ("RG3_J2KR.dcm", "RG3_UNCR.dcm", 0),
    ("MR2_J2KR.dcm", "MR2_UNCR.dcm", 0),
    ("693_J2KR.dcm", "693_UNCR.dcm", 0),
    ("US1_J2KR.dcm", "US1_UNCR.dcm", 0),      # YBR_RCT: the codec's inverse transform only, never pydicom's as well
    ("JPEG2000.dcm", "JPEG2000_UNC.dcm", 0),
    ("RG1_J2KI.dcm", "RG1_UNCI.dcm", 0),      # lossy J2K equals its own decompressed twin
    ("RG1_J2KI.dcm", "RG1_UNCR.dcm", 403),    # and differs from the original by the lossy step (stated in real_world.md)
    ("US1_J2KI.dcm", "US1_UNCR.dcm", 124),    # YBR_ICT lossy
])
def test_jpeg2000_decodes_to_its_uncompressed_twin(compressed, original, max_diff):
    a, b = quiet_read(corpus_file(compressed)), quiet_read(corpus_file(original))
    assert a.stored.shape == b.stored.shape
    assert int(np.abs(a.stored.astype(np.int64) - b.stored.astype(np.int64)).max()) == max_diff


def test_the_real_film_rg1_carries_its_header_and_voi():
    image = quiet_read(corpus_file("RG1_UNCR.dcm"))
    assert (image.width, image.height) == (1841, 1955)
    assert (image.modality, image.body_part, image.view_position) == ("CR", "CHEST", "PA")
    assert image.photometric == "MONOCHROME1" and image.bits_stored == 15
    assert (image.voi.kind, image.voi.center, image.voi.width, image.voi.function) == ("window", 15000.0, 30000.0, "LINEAR")
    assert drafting_scope(image) == [] and image.warnings == []
    ds = pydicom.dcmread(corpus_file("RG1_UNCR.dcm"))
    assert np.array_equal(image.stored, ds.pixel_array)
    expected = 1.0 - window_function(ds.pixel_array.astype(np.float64), 15000, 30000)  # MONOCHROME1: bone bright
    assert np.abs(image.pixels - expected).max() < 1e-6
    grey = image.grey16()  # what the workstation receives: the stored values themselves, the window in their units
    assert np.array_equal(grey.values, ds.pixel_array) and (grey.center, grey.width) == (15000.0, 30000.0)
    assert grey.photometric == "MONOCHROME1"


def test_bytes_and_path_give_the_same_image():
    path = corpus_file("RG1_J2KR.dcm")
    from_bytes = load_image(path.read_bytes(), name="film.dcm")
    assert from_bytes.source == "film.dcm"
    assert np.array_equal(from_bytes.stored, quiet_read(path).stored)
    grey = (np.arange(200 * 160) % 251).astype(np.uint8).reshape(200, 160)
    ok, png = cv2.imencode(".png", grey)
    image = load_image(png.tobytes(), name="upload.png")
    assert image.kind == "raster" and np.array_equal(image.stored, grey) and image.modality is None
    with pytest.raises(ImageInputError, match=r"^upload\.bin: no pixel data"):
        load_image(b"hello, not an image" * 20, name="upload.bin")


# --------------------------------------------------------------------------- VOI functions and LUTs


def _dicom(path: Path, pixels: np.ndarray, **header) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for key, value in header.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype("<u2").tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_voi_lut_function_matches_pydicom(tmp_path, function):
    ramp = np.tile(np.arange(0, 4096, 16, dtype=np.uint16), (128, 1))
    path = _dicom(tmp_path / "w.dcm", ramp, Modality="DX", WindowCenter=1800, WindowWidth=900, VOILUTFunction=function,
                  RescaleSlope=1, RescaleIntercept=0)
    image = load_image(path)
    assert image.voi.function == function
    ds = pydicom.dcmread(path)
    reference = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds).astype(np.float64), ds) / 4095.0  # 12-bit out
    assert np.abs(image.pixels - reference).max() < 1e-5


def test_voi_lut_sequence_matches_pydicom():
    path = corpus_file("vlut_04.dcm")
    image = quiet_read(path)
    assert image.voi.kind == "lut"
    ds = pydicom.dcmread(path)
    reference = apply_voi_lut(ds.pixel_array, ds).astype(np.float64)
    lut = image.voi.lut
    expected = (reference - lut.min()) / (lut.max() - lut.min())  # the LUT's output range shown as black..white
    assert np.abs(image.pixels - expected).max() < 1e-6


# --------------------------------------------------------------------------- limits


def test_absurd_dimensions_are_refused_from_the_header_before_decoding(tmp_path):
    path = _dicom(tmp_path / "huge.dcm", np.zeros((64, 64), np.uint16), Modality="CR")
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = 60000, 60000  # 7 GB of pixels claimed; the 8 KB present would fail to decode
    ds.save_as(str(path))
    with pytest.raises(ImageInputError, match=r"^huge\.dcm: image is 60000x60000 px, larger than the limit of 16384 px"):
        load_image(path)
    with pytest.raises(ImageInputError, match=r"RG1_UNCR\.dcm: image is 1841x1955 px, larger than the limit of 1024"):
        load_image(corpus_file("RG1_UNCR.dcm"), limits=ImageLimits(max_side=1024))
    with pytest.raises(ImageInputError, match="more than the limit of 1,000,000"):
        load_image(corpus_file("RG1_UNCR.dcm"), limits=ImageLimits(max_pixels=1_000_000))
    ok, png = cv2.imencode(".png", np.zeros((80, 5000), np.uint8))
    with pytest.raises(ImageInputError, match=r"^wide\.png: image is 5000x80 px, larger than the limit of 4096"):
        load_image(png.tobytes(), name="wide.png", limits=ImageLimits(max_side=4096))
    with pytest.raises(ImageInputError, match="larger than the limit of 1 MiB"):
        load_image(corpus_file("RG1_UNCR.dcm"), limits=ImageLimits(max_file_bytes=2**20))


# --------------------------------------------------------------------------- drafting scope (header checks)


def _variant(tmp_path: Path, name: str, **header) -> Path:
    """RG1 (the real chest film) with some header attributes changed."""
    ds = pydicom.dcmread(corpus_file("RG1_UNCR.dcm"))
    for key, value in header.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(str(tmp_path / name))
    return tmp_path / name


def test_scope_accepts_cr_dx_and_chest_dr_ot_and_refuses_the_rest(tmp_path):
    accepted = [("dx.dcm", {"Modality": "DX"}), ("ot.dcm", {"Modality": "OT"}),
                ("dr.dcm", {"Modality": "DR", "BodyPartExamined": "THORAX"})]
    for name, header in accepted:
        assert drafting_scope(load_image(_variant(tmp_path, name, **header))) == []
    refused = [("mr.dcm", {"Modality": "MR"}, "Modality MR is out of scope"),
               ("ot_hand.dcm", {"Modality": "OT", "BodyPartExamined": "HAND"}, "Modality OT with BodyPartExamined HAND"),
               ("nomod.dcm", {"Modality": None}, "Modality missing is out of scope")]
    for name, header, reason in refused:
        with pytest.raises(OutOfScopeError) as exc:
            drafting_scope(load_image(_variant(tmp_path, name, **header)))
        assert str(exc.value).startswith(f"{name}: {reason}") and "\n" not in str(exc.value)


def test_scope_warns_on_body_part_and_view(tmp_path):
    lateral = drafting_scope(load_image(_variant(tmp_path, "ll.dcm", ViewPosition="LL")))
    assert lateral == ["ViewPosition is LL, not PA or AP: GazeX was trained on frontal chest films"]
    bare = drafting_scope(load_image(_variant(tmp_path, "bare.dcm", BodyPartExamined=None, ViewPosition=None)))
    assert len(bare) == 2 and "BodyPartExamined is missing" in bare[0] and "ViewPosition is missing" in bare[1]
    assert drafting_scope(load_image(np.random.default_rng(0).random((128, 128)))) == []  # no header, nothing to check


@pytest.fixture(scope="module")
def gx():
    from model_support import shipped_model

    return shipped_model()


def test_analyze_refuses_a_ct_slice_with_its_reason(gx):
    with pytest.raises(OutOfScopeError) as exc:
        gx.analyze(corpus_file("CT_small.dcm"))
    assert str(exc.value).startswith("CT_small.dcm: not drafted: Modality CT is out of scope for drafting; GazeX drafts "
                                     "chest radiographs (CR or DX, or DR/OT with BodyPartExamined CHEST); ")
    assert "\n" not in str(exc.value)  # the feature score's reason follows (tests/test_input_check.py)
    with pytest.raises(OutOfScopeError, match="Modality CT"):
        gx.ask(corpus_file("CT_small.dcm"), "Is there a pleural effusion?")


def test_analyze_warns_in_the_bundle_for_a_non_chest_body_part(gx):
    with pytest.raises(OutOfScopeError, match="not drafted: BodyPartExamined is EXTREMITY, not CHEST"):
        gx.analyze(corpus_file("RG3_UNCR.dcm"))  # a real CR of a tibia: refused by default (test_input_check.py)
    bundle = gx.analyze(corpus_file("RG3_UNCR.dcm"), draft_out_of_scope=True)
    assert bundle.scope_warnings == ["BodyPartExamined is EXTREMITY, not CHEST: the draft assumes a chest radiograph"]
    assert bundle.low_confidence and bundle.image_header["body_part"] == "EXTREMITY"
    data = bundle.to_dict()
    assert data["schema"] == SCHEMA == "gazex.evidence/4"
    assert data["scope_warnings"] == bundle.scope_warnings and data["image"]["modality"] == "CR"
    again = EvidenceBundle.from_json(bundle.to_json())
    assert again.scope_warnings == bundle.scope_warnings and again.image_header == bundle.image_header


def test_analyze_drafts_the_real_chest_film_without_scope_warnings(gx):
    # its header is in scope; its pixels are unlike the synthetic training films, so it is drafted only on request
    bundle = gx.analyze(corpus_file("RG1_J2KR.dcm"), draft_out_of_scope=True)
    assert bundle.sentences and bundle.scope_warnings == []
    assert (bundle.image_width, bundle.image_height) == (1841, 1955)
    assert bundle.image_header == {"modality": "CR", "body_part": "CHEST", "view_position": "PA"}


def test_version_1_bundles_still_read():
    old = {"schema": "gazex.evidence/1", "model": {"name": "gazex", "version": "v1"}, "image": {"width": 10, "height": 10},
           "sentences": [], "findings": [], "timing_ms": {}, "warnings": []}
    bundle = EvidenceBundle.from_dict(old)
    assert bundle.scope_warnings == [] and bundle.image_header == {}
    assert bundle.to_dict()["schema"] == SCHEMA


# --------------------------------------------------------------------------- the workstation payload


def test_payload_of_the_real_film_is_stored_values_with_the_dicom_voi():
    from app.image_payload import load_study_image

    study_image = load_study_image(str(corpus_file("RG1_J2KR.dcm")))
    payload = study_image.fields
    assert payload["photometric"] == "MONOCHROME1"  # the browser inverts after the VOI
    assert payload["window"] == {"center": 15000.0, "width": 30000.0} and payload["voi_function"] == "LINEAR"
    values = study_image.values
    assert (payload["width"], payload["height"]) == (1841, 1955) and max(values.shape) == 1024
    stored = pydicom.dcmread(corpus_file("RG1_UNCR.dcm")).pixel_array
    small = cv2.resize(stored.astype(np.float32), values.shape[::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(values.astype(np.float32) - small).max() <= 0.5  # stored values, only downscaled
    assert values.max() > 20000 and values.min() < 2000  # the whole 15-bit range, beyond any 10-bit display window


def test_payload_carries_a_sigmoid_voi_function(tmp_path):
    from app.workstation import image_payload

    ramp = np.tile(np.arange(0, 4096, 16, dtype=np.uint16), (128, 1))
    path = _dicom(tmp_path / "s.dcm", ramp, Modality="DX", WindowCenter=2000, WindowWidth=1000, VOILUTFunction="SIGMOID")
    payload = image_payload(load_image(path))
    assert payload["voi_function"] == "SIGMOID" and payload["window"] == {"center": 2000.0, "width": 1000.0}
    from app.workstation import unpack_rgb16_png

    assert np.array_equal(unpack_rgb16_png(base64.b64decode(payload["png_b64"])), ramp)


# --------------------------------------------------------------------------- the real film in the demo worklist


def test_launch_real_film_imports_rg1_once_deidentified_with_its_pixels(tmp_path):
    import launch
    from annotations_db import ReviewService

    service = ReviewService.open(f"sqlite:///{tmp_path / 'gazex.sqlite3'}", data_dir=str(tmp_path))
    try:
        first = launch.ensure_real_film(service, tmp_path)
        assert len(first) == 1 and launch.ensure_real_film(service, tmp_path) == first  # idempotent on relaunch
        study_id, _, image_path = first[0]
        assert Path(image_path).is_relative_to(tmp_path) and "RG1" not in image_path
        image = load_image(image_path)
        assert (image.modality, image.body_part, image.view_position, image.photometric) == ("CR", "CHEST", "PA", "MONOCHROME1")
        assert np.array_equal(image.stored, pydicom.dcmread(corpus_file("RG1_UNCR.dcm")).pixel_array)
    finally:
        service.close()


def test_cli_refuses_a_ct_slice_in_one_line_before_loading_the_model():
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "training.cli", "analyze", str(corpus_file("CT_small.dcm"))],
                         capture_output=True, text=True, cwd=repo, timeout=300)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
    assert "CT_small.dcm: Modality CT is out of scope for drafting" in out.stderr


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_or_corrupt_raster_is_refused_in_one_line(tmp_path, ext):
    ok, encoded = cv2.imencode(ext, (np.random.default_rng(3).random((300, 300)) * 255).astype(np.uint8))
    path = tmp_path / f"cut{ext}"
    path.write_bytes(encoded.tobytes()[:2000])
    with pytest.raises(ImageInputError, match=rf"^cut\{ext}: image file is corrupt or truncated \(OSError: image file is truncated"):
        load_image(path)
    (tmp_path / f"text{ext}").write_text("this is a text file with an image extension\n" * 20)
    with pytest.raises(ImageInputError, match=rf"^text\{ext}: not a readable DICOM, PNG or JPEG image \(unrecognised image data\)$"):
        load_image(tmp_path / f"text{ext}")
