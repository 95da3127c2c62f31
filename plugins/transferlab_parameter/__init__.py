"""Parameter transfer: keep training the pretrained weights themselves on the new task."""
