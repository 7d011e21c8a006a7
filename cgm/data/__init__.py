"""Video data for CGM-Net: decoding, clip sampling, transforms, real and embedded datasets.

Names resolve lazily so that `import cgm.data` stays cheap (PyAV and OpenCV load on first use).
"""

import importlib

_EXPORTS = {
    # decoding, sampling, transforms
    "decode": ["VideoError", "VideoReader", "read_frames", "probe_video"],
    "sampling": ["sample_train_clip", "sample_test_clips", "sample_windows", "TooShortError"],
    "transforms": ["ClipTransform", "train_transform", "test_transform"],
    # real datasets
    "datasets": [
        "UCF101",
        "HMDB51",
        "Kinetics",
        "VideoList",
        "VideoFolder",
        "UCFFlow",
        "UCFPred",
        "UCF101_CLASSES",
        "ucf_subset",
    ],
    # embedded datasets
    "synthmotion": ["SynthMotion", "SYNTH_CLASSES"],
    "natural": ["NaturalClips"],
    "knownmotion": ["KnownMotion"],
    "registry": ["build_dataset", "DATASETS"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'cgm.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
