from setuptools import find_packages, setup

setup(
    name="legacy_nst",
    version="0.1.0",
    description="Classic Gatys-style neural style transfer as TF1-style graphs with L-BFGS",
    packages=find_packages(include=["legacy_nst", "legacy_nst.*"]),
    python_requires=">=3.11",
    install_requires=[
        "tensorflow>=2.16",
        "scipy>=1.11",
        "numpy>=1.26",
        "pillow>=10.1",
        "opencv-python-headless>=4.8",
        "h5py>=3.9",
        "tqdm>=4.66",
        "threadpoolctl>=3.1",  # scipy's L-BFGS-B on one BLAS thread (optimisers.py)
        "scikit-image>=0.22",  # colour conversions (colour.py), SSIM (compare.py)
        "matplotlib>=3.8",  # the loss plot (plots.py), imported only when one is drawn
    ],
    extras_require={"test": ["pytest>=8", "hypothesis>=6.100", "keras>=3", "nbclient>=0.10", "nbformat>=5.9",
                             "ipykernel>=6.29"], "ray": ["ray[default]>=2.10"],
                    # bench/peers.py's PyTorch peer only; the engine never imports it
                    "bench": ["torch>=2.4"]},
    entry_points={"console_scripts": ["legacy-nst=legacy_nst.ui.cli:entry_point"]},
)
