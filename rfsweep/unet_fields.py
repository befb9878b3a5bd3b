"""The U-Net space's vocabulary, shared by the spec (`unet_space.py`) and the evaluator (`unet_sweep.py`).

Plain constants, no imports: cheap to load anywhere. The codes are positions
(the kernel's TRANSPOSED/NEAREST/BILINEAR and VALID/SAME).
"""

UPSAMPLING = ("transposed", "nearest", "bilinear")
PADDING = ("valid", "same")
# one config's digits, slowest first (config_id's mixed radix); the first five are its structure
AXES = ("levels", "convs", "kernel", "padding", "upsampling", "width_multiplier", "base_width")
STRUCTURE_AXES = AXES[:5]
BYTES_PER_ELEMENT = 4  # peak_bytes is for float32 activations
