"""BraTS Lab: post-treatment glioma segmentation on multi-parametric MRI (BraTS 2024 GLI).

Data flows down this list of modules and never back up:
``labels`` → ``io`` → ``synthetic`` → ``preprocess`` → ``augment``/``data`` → ``models`` → ``losses`` →
``train`` → ``inference`` → ``metrics`` → ``analysis``/``viz``; ``cli`` wraps them.
"""

__version__ = "0.1.0"
