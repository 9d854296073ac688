"""Enumerations of include/dsv3.h, mirrored as Python enums.

``ALL_ENUMS`` maps each class to the C prefix of its enumerators:
``LogLevel.WARN`` is ``DSV3_LOG_WARN``. The binding tests compare every value
with the layout dump of the C ABI suite, so a renumbered or added enumerator
fails them.
"""

from __future__ import annotations

import enum

__all__ = [
    "Status", "LogLevel", "ProgressStage", "DType", "Backend", "ModelFlags",
    "Placement", "ModelInfoFlags", "TokenizeFlags", "DetokenizeFlags",
    "ChatFlags", "ContextFlags", "DecodeFlags", "ContextParam", "StopReason",
    "GenerateFlags", "ALL_ENUMS",
]


class Status(enum.IntEnum):
    """Status codes (``enum dsv3_status``): 0 is success, errors are negative."""

    OK = 0
    E_INVAL = -1
    E_NOMEM = -2
    E_IO = -3
    E_FORMAT = -4
    E_CHECKSUM = -5
    E_VERSION = -6
    E_UNSUPPORTED = -7
    E_NODEV = -8
    E_BACKEND = -9
    E_NOSPC = -10
    E_CTX_FULL = -11
    E_CANCELED = -12
    E_BUSY = -13
    E_MISUSE = -14
    E_INTERNAL = -15
    E_RANGE = -16
    E_UTF8 = -17


class LogLevel(enum.IntEnum):
    """Log levels, most severe first (``enum dsv3_log_level``)."""

    NONE = 0
    ERROR = 1
    WARN = 2
    INFO = 3
    DEBUG = 4


class ProgressStage(enum.IntEnum):
    """Stages reported to progress callbacks."""

    LOAD = 1
    CONVERT = 2


class DType(enum.IntEnum):
    """Element types of weights and caches."""

    DEFAULT = 0
    F32 = 1
    F16 = 2
    BF16 = 3
    FP8_E4M3 = 4
    Q8_0 = 5
    Q4 = 6


class Backend(enum.IntEnum):
    """Compute backends."""

    AUTO = 0
    CPU = 1
    CUDA = 2


class ModelFlags(enum.IntFlag):
    """Flags of model loading."""

    NO_MMAP = 1 << 0
    SKIP_CHECKSUMS = 1 << 1
    NO_MTP = 1 << 2


class Placement(enum.IntEnum):
    """Where routed experts live."""

    DEFAULT = 0
    EXPERTS_ON_CPU = 1


class ModelInfoFlags(enum.IntFlag):
    """Flags of :class:`dsv3.ModelInfo`."""

    HAS_MTP = 1 << 0
    HAS_TOKENIZER = 1 << 1
    HAS_CHAT = 1 << 2
    Q_LORA = 1 << 3
    SIGMOID_ROUTER = 1 << 4


class TokenizeFlags(enum.IntFlag):
    """Flags of dsv3_tokenize."""

    ADD_BOS = 1 << 0
    NO_SPECIAL = 1 << 1


class DetokenizeFlags(enum.IntFlag):
    """Flags of dsv3_detokenize."""

    SKIP_SPECIAL = 1 << 0


class ChatFlags(enum.IntFlag):
    """Flags of dsv3_chat_apply."""

    ADD_GENERATION_PROMPT = 1 << 0


class ContextFlags(enum.IntFlag):
    """Flags of context creation."""

    MTP = 1 << 0
    NAIVE_ATTN = 1 << 1


class DecodeFlags(enum.IntFlag):
    """Flags of dsv3_context_decode."""

    ALL_LOGITS = 1 << 0


class ContextParam(enum.IntEnum):
    """Keys of dsv3_context_set_param / dsv3_context_get_param."""

    N_THREADS = 1
    MTP = 2
    N_CTX = 3
    N_PAST = 4
    MTP_DRAFTED = 5
    MTP_ACCEPTED = 6


class StopReason(enum.IntEnum):
    """Why a generation ended."""

    NONE = 0
    EOS = 1
    STRING = 2
    MAX_TOKENS = 3
    CTX_FULL = 4
    CALLBACK = 5
    CANCELED = 6
    ERROR = 7


class GenerateFlags(enum.IntFlag):
    """Flags of dsv3_generate."""

    IGNORE_EOS = 1 << 0
    SHOW_SPECIAL = 1 << 1


#: Every mirrored enum with the C prefix of its enumerators.
ALL_ENUMS = {
    Status: "DSV3_",
    LogLevel: "DSV3_LOG_",
    ProgressStage: "DSV3_PROGRESS_",
    DType: "DSV3_DTYPE_",
    Backend: "DSV3_BACKEND_",
    ModelFlags: "DSV3_MODEL_",
    Placement: "DSV3_PLACE_",
    ModelInfoFlags: "DSV3_INFO_",
    TokenizeFlags: "DSV3_TOKENIZE_",
    DetokenizeFlags: "DSV3_DETOKENIZE_",
    ChatFlags: "DSV3_CHAT_",
    ContextFlags: "DSV3_CONTEXT_",
    DecodeFlags: "DSV3_DECODE_",
    ContextParam: "DSV3_CTX_PARAM_",
    StopReason: "DSV3_STOP_",
    GenerateFlags: "DSV3_GENERATE_",
}
