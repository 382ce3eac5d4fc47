"""Fused CPU kernels for EvoNorm-B0 and EvoNorm-S0, compiled on first use and cached.

The C++ source (``evonorm_ops.cc``) is compiled against the installed TensorFlow with the local
``g++`` the first time a process needs it (about 10 s; ``scripts/bootstrap.sh`` does it ahead of
time with ``python -m evonorm.kernels``) into ``~/.cache/evonorm/kernels/<hash>/``, keyed by the source,
the TensorFlow version and the compiler flags. Where it cannot be built (no compiler, other platform)
or is disabled with ``EVONORM_DISABLE_KERNELS=1``, the layers silently use the pure TensorFlow
formulas of ``evonorm.ops``: same results, slower on CPU. The kernels are used only for channels-last
float32 statistics on CPU outside XLA; GPU/TPU and ``jit_compile=True`` use the TensorFlow formulas,
which XLA fuses there.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import tensorflow as tf

SOURCE = Path(__file__).with_name("evonorm_ops.cc")
_FLAGS = ["-shared", "-O3", "-march=native", "-ffast-math", "-fPIC", "-w"]
_lock = threading.Lock()
_state: dict = {}
log = logging.getLogger(__name__)


def _cache_dir() -> Path:
    root = os.environ.get("EVONORM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "evonorm")
    return Path(root) / "kernels"


def library_path() -> Path:
    """Where the compiled library for this source / TensorFlow / flags combination lives."""
    key = hashlib.sha256()
    key.update(SOURCE.read_bytes())
    key.update(tf.__version__.encode())
    key.update(" ".join(_FLAGS + tf.sysconfig.get_compile_flags()).encode())
    return _cache_dir() / key.hexdigest()[:16] / "evonorm_ops.so"


def build(verbose: bool = False) -> Path:
    """Compiles the kernels if needed and returns the library path. Raises RuntimeError on failure."""
    target = library_path()
    if target.exists():
        return target
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise RuntimeError("no C++ compiler found (install g++ or set CXX)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    cmd = [compiler, *_FLAGS, *tf.sysconfig.get_compile_flags(), str(SOURCE), "-o", tmp,
           *tf.sysconfig.get_link_flags()]
    if verbose:
        print(" ".join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        os.unlink(tmp)
        raise RuntimeError(f"compiling {SOURCE.name} failed:\n{proc.stderr[-4000:]}")
    os.replace(tmp, target)  # atomic: concurrent builders never load a half-written file
    return target


def _register_gradients(lib):
    if _state.get("gradients_registered"):  # TF's registry is process-global and refuses repeats
        return
    _state["gradients_registered"] = True

    @tf.RegisterGradient("EvonormS0")
    def _s0_grad(op, dy, _dmean, _drstd):
        return lib.evonorm_s0_grad(dy, op.inputs[0], op.inputs[1], op.inputs[2], op.outputs[1],
                                   op.outputs[2], groups=op.get_attr("groups"))

    @tf.RegisterGradient("EvonormB0")
    def _b0_grad(op, dy, *_unused):
        dx, dv1, dgamma, dbeta = lib.evonorm_b0_grad(
            dy, op.inputs[0], op.inputs[1], op.inputs[2], op.outputs[1], op.outputs[2], op.outputs[3],
            op.outputs[4], epsilon=op.get_attr("epsilon"), training=op.get_attr("training"))
        return dx, dv1, dgamma, dbeta, tf.zeros_like(op.inputs[4])


def load():
    """The loaded op library, or None (with the reason logged once) when kernels are unavailable."""
    with _lock:
        if "lib" in _state:
            return _state["lib"]
        lib = None
        if os.environ.get("EVONORM_DISABLE_KERNELS", "") not in ("", "0"):
            log.info("evonorm fused kernels disabled by EVONORM_DISABLE_KERNELS")
        elif not sys.platform.startswith("linux"):
            log.info("evonorm fused kernels are built for Linux only; using TensorFlow formulas")
        else:
            try:
                lib = tf.load_op_library(str(build()))
                _register_gradients(lib)
            except (RuntimeError, OSError, tf.errors.NotFoundError) as err:
                log.warning("evonorm fused kernels unavailable, using TensorFlow formulas: %s", err)
                lib = None
        _state["lib"] = lib
        return lib


_local = threading.local()


@contextlib.contextmanager
def disabled():
    """Within this block (in this thread), layers traced or called eagerly use the TF formulas.

    For side-by-side measurements and debugging; tf.function traces made inside keep that choice.
    """
    previous = getattr(_local, "disabled", False)
    _local.disabled = True
    try:
        yield
    finally:
        _local.disabled = previous


def _in_xla_context() -> bool:
    try:
        from tensorflow.python.ops import control_flow_util  # noqa: PLC0415 - internal, guarded
        return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))
    except (ImportError, AttributeError):
        return True  # unknown: stay on the always-correct path


def usable(x: tf.Tensor, data_format: str, synchronized: bool = False):
    """The library when the fused kernels apply to ``x`` here (CPU, NHWC float32, no XLA), else None."""
    if (data_format != "channels_last" or x.dtype != tf.float32 or synchronized
            or x.shape.rank is None or x.shape.rank < 3 or x.shape[-1] is None):
        return None
    if getattr(_local, "disabled", False):
        return None
    if tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"):
        return None
    if _in_xla_context():
        return None
    return load()


def evonorm_s0(lib, x, v1, gamma, beta, groups: int, epsilon: float):
    """Fused ``EvoNorm-S0(x) * gamma + beta``."""
    return lib.evonorm_s0(x, v1, gamma, beta, groups=groups, epsilon=epsilon)[0]


def evonorm_b0(lib, x, v1, gamma, beta, moving_var, epsilon: float, training: bool):
    """Fused ``EvoNorm-B0(x) * gamma + beta``; returns (output, batch variance) (moving one at inference)."""
    out = lib.evonorm_b0(x, v1, gamma, beta, moving_var, epsilon=epsilon, training=training)
    return out[0], out[2]
