"""One loader class per public dataset format, all returning LoadResult of Study objects.

    from training.data.loaders import load_dataset
    result = load_dataset("reflacx", "/data/reflacx", mimic_root="/data/mimic-cxr-jpg", image_format="jpg")
    for issue in result.issues: print(issue)      # file:line: problem

Kinds: synthetic, reflacx, egd-cxr, mimic-cxr, iu-xray, vindr-cxr, ms-cxr (see docs/data_loaders.md).
"""

from training.data.loaders.base import DatasetLoader, Issues, dataset_kinds, image_size, load_dataset
from training.data.loaders.egd import EgdCxrLoader
from training.data.loaders.iu_xray import IuXrayLoader
from training.data.loaders.mimic import MimicCxrLoader
from training.data.loaders.ms_cxr import MsCxrLoader
from training.data.loaders.reflacx import ReflacxLoader
from training.data.loaders.synthetic import SyntheticLoader, load_synthetic
from training.data.loaders.vindr import VindrCxrLoader

__all__ = [
    "DatasetLoader",
    "EgdCxrLoader",
    "Issues",
    "IuXrayLoader",
    "MimicCxrLoader",
    "MsCxrLoader",
    "ReflacxLoader",
    "SyntheticLoader",
    "VindrCxrLoader",
    "dataset_kinds",
    "image_size",
    "load_dataset",
    "load_synthetic",
]
