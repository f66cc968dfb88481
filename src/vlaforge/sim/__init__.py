"""The embedded simulator: Meta-World tasks on MuJoCo rendered on the CPU, scripted demonstrations,
caption images and closed-loop evaluation.

MuJoCo picks its OpenGL backend when it is first imported, so the headless OSMesa backend is chosen
here, before any submodule imports mujoco (an explicit ``MUJOCO_GL`` in the environment wins).
"""

import os

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
