"""Video: the projector window, recordings and video-out sinks, the camera, the virtual display."""
