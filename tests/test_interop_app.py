"""The admin's Import and export section (app/admin_import.py) without a browser: the real service and importer."""

from __future__ import annotations

import shutil
import zipfile

import pytest

from annotations_db import ReviewService
from interop_support import files_containing, identifier_needles, make_cr

ADMIN, READER = ("chief", "chief-pass-1"), ("alice", "alice-pass-1")


@pytest.fixture
def context(tmp_path):
    from app.runtime import build_context

    service = ReviewService.open(None, data_dir=str(tmp_path / "site"))
    service.create_reader(*ADMIN, "admin")
    service.create_reader(*READER, "reader", acting=ADMIN[0])
    ctx = build_context(service, None, review_only=True)
    ctx.data_dir = tmp_path / "site"
    yield ctx
    service.close()


def _uploads(tmp_path, n: int = 2) -> tuple[list[str], list[dict]]:
    """Files as Gradio leaves them in its temporary folder after an upload."""
    folder = tmp_path / "gradio-tmp"
    folder.mkdir()
    originals = [make_cr(folder / f"IM{i:04d}.dcm", seed=70 + i) for i in range(n)]
    (folder / "notes.txt").write_text("for Dr. Kildare")
    return sorted(str(p) for p in folder.iterdir()), originals


def test_an_admin_upload_is_imported_de_identified_and_the_uploads_are_deleted(context, tmp_path):
    from app.admin_import import upload_and_import

    paths, originals = _uploads(tmp_path)
    steps = []
    text = upload_and_import(context, ADMIN[0], paths, "ward-7", progress=lambda done, total: steps.append(done))
    assert text.splitlines()[0] == ("**Import into study set 'ward-7':** imported 2, skipped 1 (1 a text file, not a "
                                    "DICOM, PNG or JPEG image); 0 drafts queued.")
    assert text.splitlines()[1].startswith("- `notes.txt`: a text file")
    assert steps == [1, 2, 3]
    assert list((tmp_path / "gradio-tmp").iterdir()) == []  # no original header left on the server
    assert files_containing(tmp_path, identifier_needles(originals)) == []
    assert len(context.service.study_set_studies("ward-7")) == 2


def test_a_reader_cannot_import_and_the_upload_is_still_deleted(context, tmp_path):
    from app.admin_import import upload_and_import

    paths, _ = _uploads(tmp_path, 1)
    assert upload_and_import(context, READER[0], paths, "x") == "**Not imported:** only an admin can do this"
    assert list((tmp_path / "gradio-tmp").iterdir()) == []
    assert context.service.study_sets() == []


def test_export_of_a_signed_review_downloads_a_zip_of_the_four_files(context, tmp_path):
    from app.admin_import import export_review_zip, upload_and_import
    from test_interop_export import _bundle

    paths, _ = _uploads(tmp_path, 1)
    upload_and_import(context, ADMIN[0], paths, "s")
    service = context.service
    (study,) = service.study_set_studies("s")
    model = service.register_model_version("gazex-tiny", "v3", "h3", status="active")
    service.save_draft(study.id, model.id, _bundle())
    sid = service.open_session(READER[0], study.id).session_id
    assert export_review_zip(context, ADMIN[0], sid) == (None, f"**Not exported:** review session {sid} is not "
                                                               "signed; only signed reviews are exported")
    service.sign_off(READER[0], sid, "accept", "FINDINGS: As drafted.", active_ms=1000, accept_rest=True)
    archive, message = export_review_zip(context, ADMIN[0], sid)
    assert sorted(zipfile.ZipFile(archive).namelist()) == ["gsps.dcm", "report.txt", "review.json", "sr.dcm"]
    assert export_review_zip(context, READER[0], sid)[1] == "**Not exported:** only an admin can do this"
    shutil.rmtree(archive.rsplit("/", 1)[0])


def test_the_admin_tab_builds_with_the_section(context):
    from app.main import build_app

    demo = build_app(context)
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert {"gx-admin-import-folder", "gx-admin-import-button", "gx-admin-export-button"} <= ids
