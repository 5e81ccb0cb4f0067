"""ganflow: the library behind the StyleGAN dataset-to-video Snakemake workflow.

Every stage lives in a module named after what it makes (ids, faces, clean, dedupe,
images, dataset, ...). Nothing here imports snakemake: workflow_scripts/ adapt.
"""

__version__ = "0.1.0"
