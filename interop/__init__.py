"""DICOM in and out: import with de-identification, DICOMweb (QIDO/WADO/STOW), signed reviews as SR and GSPS.

May import gazex_core and annotations_db; app and training may import interop (tests/test_model_imports.py).
"""
