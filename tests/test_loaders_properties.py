"""Property-based tests: random breakage of valid loader fixtures never raises, and every value the
load drops or changes is reported (an issue naming that file and line).

Each example copies one fixture dataset (tests/fixtures/<dataset>/), breaks one file in one way —
an invalid cell value in a typed column, a stray unquoted delimiter, a repeated or dropped row,
header names in another case or padded with spaces, a trailing comma on every row — loads it, and
compares the studies with the unbroken load.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader_mutations import (
    FIXTURES,
    assert_well_formed,
    copy_fixture,
    data_lines,
    drop_line,
    duplicate_line,
    edit_line,
    header_columns,
    issue_at,
    load,
    rename_header,
    set_cell,
    studies_view,
    trailing_commas,
)
from training.data.loaders.base import parse_bool

FIX_COLUMNS = ["timestamp_start_fixation", "timestamp_end_fixation", "x_position", "y_position",
               "angular_resolution_x_pixels_per_degree", "angular_resolution_y_pixels_per_degree"]
BOX = ["xmin", "ymin", "xmax", "ymax"]
# (dataset, file, columns with a typed domain: any non-number / non-boolean text there is invalid)
TARGETS = [
    ("reflacx", "main_data/metadata_phase_3.csv", ["image_size_x", "image_size_y", "eye_tracking_data_discarded",
                                                   "subject_id", "Atelectasis", "Pleural abnormality", "Support devices"]),
    ("reflacx", "main_data/P300R100001/fixations.csv", FIX_COLUMNS),
    ("reflacx", "main_data/P300R100001/timestamps_transcription.csv", ["timestamp_start_word", "timestamp_end_word"]),
    ("reflacx", "main_data/P300R100001/anomaly_location_ellipses.csv", [*BOX, "certainty", "Pleural abnormality", "Atelectasis"]),
    ("reflacx", "main_data/P300R100001/chest_bounding_box.csv", BOX),
    ("reflacx", "gaze_data/P300R100001/gaze.csv", ["timestamp_sample", "x_position", "y_position"]),
    ("mimic", "mimic-cxr-2.0.0-chexpert.csv", ["study_id", "Atelectasis", "Cardiomegaly", "Edema", "No Finding", "Pneumothorax"]),
    ("mimic", "mimic-cxr-2.0.0-metadata.csv", ["subject_id", "study_id", "Rows", "Columns"]),
    ("mimic", "mimic-cxr-2.0.0-split.csv", ["split"]),
    ("egd", "master_sheet.csv", ["study_id", "patient_id", "image_left_pad", "cardiomegaly__chx", "edema__chx", "no_finding__chx"]),
    ("egd", "fixations.csv", ["Time (in secs)", "X_ORIGINAL", "Y_ORIGINAL", "FPOGD"]),
    ("egd", "eye_gaze.csv", ["Time (in secs)", "X_ORIGINAL", "Y_ORIGINAL"]),
    ("egd", "bounding_boxes.csv", ["x1", "x2", "y1", "y2"]),
    ("vindr", "train.csv", ["x_min", "y_min", "x_max", "y_max"]),
    ("ms_cxr", "MS_CXR_Local_Alignment_v1.1.0.csv", ["x", "y", "w", "h", "image_width", "image_height"]),
    ("synthetic", "metadata.csv", ["width", "height", "Atelectasis", "Lung Lesion", "No Finding"]),
    ("synthetic", "annotations.csv", ["x_min", "y_min", "x_max", "y_max"]),
    ("synthetic", "report_sentences.csv", ["sentence_index", "is_negative"]),
    ("synthetic", "reflacx/main_data/P300R000001/fixations.csv", FIX_COLUMNS),
]
PROPERTY_SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


INVALID = st.one_of(
    st.sampled_from(["abc", "Ture", "yes?", "inf", "-inf", "nan", "NaN", "1e400", "n/a", "--", "0x10", "½", "12abc", "1.2.3"]),
    st.text(st.characters(whitelist_categories=("Lu", "Ll")), min_size=1, max_size=8).filter(
        lambda t: parse_bool(t) is None and not (_is_number(t) and t.strip().lower() not in ("inf", "nan", "infinity"))),
)


@functools.lru_cache(maxsize=None)
def baseline(dataset: str):
    return load(dataset, FIXTURES / dataset)


def _loaded(dataset: str, edit):
    with tempfile.TemporaryDirectory(prefix="gazex-loader-prop-") as tmp:
        root = copy_fixture(dataset, Path(tmp))
        where = edit(root)
        result = load(dataset, root)  # never raises: an exception fails the test
    assert_well_formed(result.issues)
    return result, where


target = st.sampled_from(TARGETS)


@PROPERTY_SETTINGS
@given(target=target, data=st.data(), value=INVALID)
def test_an_invalid_value_is_reported_or_changes_nothing(target, data, value):
    dataset, file, columns = target
    present = [c for c in columns if c in header_columns(FIXTURES / dataset / file)]
    column = data.draw(st.sampled_from(present), label="column")
    line = data.draw(st.sampled_from(data_lines(FIXTURES / dataset / file)), label="line")
    result, _ = _loaded(dataset, lambda root: set_cell(root / file, line, column, value))
    if studies_view(result) != studies_view(baseline(dataset)):
        at_line = [i for i in result.issues if i.file.endswith(file) and i.row == line]
        assert any(column in i.problem for i in at_line), (file, line, column, value, [str(i) for i in result.issues])


@PROPERTY_SETTINGS
@given(target=target, data=st.data())
def test_a_stray_delimiter_loses_that_row_only_and_says_so(target, data):
    dataset, file, _ = target
    lines = [n for n in data_lines(FIXTURES / dataset / file)
             if '"' not in (FIXTURES / dataset / file).read_text().splitlines()[n - 1]]
    line = data.draw(st.sampled_from(lines), label="line")
    text = (FIXTURES / dataset / file).read_text().splitlines()[line - 1]
    at = data.draw(st.integers(0, len(text)), label="position")
    result, _ = _loaded(dataset, lambda root: edit_line(root / file, line, lambda t: t[:at] + "," + t[at:]))
    assert issue_at(result.issues, file, line), [str(i) for i in result.issues]


@PROPERTY_SETTINGS
@given(target=target, data=st.data())
def test_a_repeated_row_is_reported_and_changes_nothing(target, data):
    dataset, file, _ = target
    line = data.draw(st.sampled_from(data_lines(FIXTURES / dataset / file)), label="line")
    result, copy = _loaded(dataset, lambda root: duplicate_line(root / file, line))
    assert studies_view(result) == studies_view(baseline(dataset))
    assert issue_at(result.issues, file, copy), [str(i) for i in result.issues]


@PROPERTY_SETTINGS
@given(target=target, data=st.data(),
       change=st.sampled_from([str.upper, str.lower, str.title, lambda n: f" {n}  ", lambda n: n.replace(" ", "  ")]))
def test_header_case_and_spacing_do_not_matter(target, data, change):
    dataset, file, _ = target
    names = header_columns(FIXTURES / dataset / file)
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True), label="columns")
    result, _ = _loaded(dataset, lambda root: rename_header(root / file, change, chosen))
    assert studies_view(result) == studies_view(baseline(dataset))
    assert len(result.issues) == len(baseline(dataset).issues), [str(i) for i in result.issues]


@PROPERTY_SETTINGS
@given(target=target)
def test_a_trailing_comma_on_every_row_is_ignored_and_reported(target):
    dataset, file, _ = target
    result, _ = _loaded(dataset, lambda root: trailing_commas(root / file))
    assert studies_view(result) == studies_view(baseline(dataset))
    assert issue_at(result.issues, file, data_lines(FIXTURES / dataset / file)[0])


@PROPERTY_SETTINGS
@given(target=target, data=st.data())
def test_a_dropped_row_never_raises(target, data):
    dataset, file, _ = target
    line = data.draw(st.sampled_from(data_lines(FIXTURES / dataset / file)), label="line")
    _loaded(dataset, lambda root: drop_line(root / file, line))
