from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent


def read_requirements(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """Pinned requirements: the lines before the first ``# [extra: name]`` header are the core, each
    header starts an extra (``pip install -e .[name]``)."""
    core: list[str] = []
    extras: dict[str, list[str]] = {}
    current = core
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("# [extra:"):
            current = extras.setdefault(line.split(":", 1)[1].split("]", 1)[0].strip(), [])
        elif line and not line.startswith("#"):
            current.append(line)
    return core, extras


requirements, extras = read_requirements(here / "requirements.txt")

setup(
    name="specvqgan",
    version="0.1.0",
    description="Visually guided sound generation: Spectrogram VQGAN + cross-modal GPT + MelGAN",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["specvqgan", "specvqgan.*", "feature_extraction", "feature_extraction.*",
                                    "vocoder", "vocoder.*", "evaluation", "evaluation.*"]),
    package_data={"evaluation": ["data/*.txt", "configs/*.yaml"], "specvqgan": ["reference_targets.yaml"], "specvqgan.modules.transformer": ["csrc/*.cpp"],
                  "vocoder": ["csrc/*.cpp"], "feature_extraction": ["csrc/*.cpp"]},
    install_requires=requirements,
    extras_require=extras,
)
