"""evonorm: Evolving Normalization-Activation Layers (Liu et al., NeurIPS 2020) in TensorFlow.

Pins: a resolver-clean TensorFlow 2.20 stack (tf-models-official 2.20.0 pins tensorflow~=2.20.0).
``requirements.lock`` is the full tested environment these pins resolve to.
"""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "tensorflow==2.20.0",
    "tf-keras==2.20.1",
    "tf-models-official==2.20.0",
    "tensorflow-text==2.20.1",
    "tensorflow-datasets==4.9.10",
    "absl-py==1.4.0",
    "numpy==2.4.6",
    "matplotlib==3.11.2",
]

EXTRAS = {
    "test": ["pytest==9.2.0"],
    "ray": ["ray==2.60.0"],
}

setup(
    name="evonorm",
    version="0.1.0",
    description="EvoNorm normalization-activation layers, layer search and reproduction suites (TensorFlow)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["evonorm", "evonorm.*"]),
    package_data={"evonorm.kernels": ["*.cc"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["evonorm-search = evonorm.search.main:run",
                                     "evonorm-train = evonorm.vision.train_main:run",
                                     "evonorm-gan = evonorm.gan.main:run"]},
    license="Apache-2.0",
)
