"""ganflow: the library behind the StyleGAN dataset-to-video Snakemake workflow.

Every stage lives in a module named after what it makes (ids, faces, clean, dedupe,
images, dataset, ...). Nothing here imports snakemake: workflow_scripts/ adapt.
"""

import os

# TensorFlow's C++ start-up chatter (oneDNN, CPU features) buries the job logs; warnings
# and errors still show. Set before any stage imports TensorFlow; a user's value wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
