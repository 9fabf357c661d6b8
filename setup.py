from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [line.strip() for line in (here / "requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

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
    package_data={"evaluation": ["data/*.txt"]},
    install_requires=requirements,
    extras_require={"test": ["pytest>=8"]},
)
