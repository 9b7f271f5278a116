"""Streaming diffusion over the procedural layer: families, stream batch, ControlNet, runtime LoRAs.

settings.py  the wing's door: RenderSettings, built by installation.config from [render]
weights.py   which file is missing or damaged (one sentence each)
families.py  which family a folder is, and the one load path for all of them
schedule.py  timestep plans and their constants, worked out once on the host
engine.py    device buffers and the frame's forward pass (eager or a CUDA graph)
stream.py    the frames in flight: their plans on the device, the fill, the latent history
prompts.py   text encoders and the slerp between captions' embeddings
skip.py      the similarity skip
control.py   the ControlNet's structure picture
scene.py     what a scene's [render] table sets (strength, feedback, size)
modules.py   modules onto the device; torch.compile and TensorRT
loras.py     LCM-LoRA fusion and runtime LoRAs with live weights
stats.py     the counters the status line and the benchmark read
renderer.py  the Renderer: prompts, strength, skip, last good frame, stepping down on OOM
load.py      configured weights -> a renderer
syncs.py     counting host-device synchronisations per frame
"""
